import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { guessesASecret, searchEvidence } from '../../../src/agent/tools/search-evidence.ts';
import { stringsAround } from '../../../src/agent/tools/strings-around.ts';
import { callTool, defineTool, type ToolContext } from '../../../src/agent/tools/tool.ts';
import { KnownSecrets } from '../../../src/analyze/redact.ts';

/**
 * What the read-only tools hand the model: a secret found once (PASSWORD=x) is hidden wherever
 * its value turns up again, in the same result or a later one; search_evidence refuses patterns
 * that would guess a secret by its matches, and redacts a match's context as the wider text reads.
 */

const SECRET = 'hunter2secret';

const echo = defineTool({
  name: 'echo',
  description: 'returns its text',
  acts: false,
  input: z.object({ text: z.string() }),
  async run(input) {
    return { source: 'echo', text: input.text };
  },
});

const use = (name: string, input: unknown, id = 'toolu_1') => ({
  type: 'tool_use' as const,
  id,
  name,
  input,
});
const text = (content: unknown) => (typeof content === 'string' ? content : JSON.stringify(content));

describe('tool results and known secrets', () => {
  it('hides a bare copy of a secret found by name, in the same result and in later ones', async () => {
    const ctx = { knownSecrets: new KnownSecrets() } as unknown as ToolContext;
    const first = await callTool(
      [echo],
      use('echo', { text: `DB_PASSWORD=${SECRET}\nheap: ..${SECRET}..` }),
      ctx,
    );
    assert.ok(!text(first.result.content).includes(SECRET), text(first.result.content));
    const later = await callTool([echo], use('echo', { text: `a copy: ${SECRET}` }, 'toolu_2'), ctx);
    assert.ok(!text(later.result.content).includes(SECRET), text(later.result.content));
    assert.match(text(later.result.content), /a copy: \[REDACTED\]/);
  });
});

describe('search_evidence', () => {
  let evidenceDir: string;
  const incidentId = 7;
  before(() => {
    evidenceDir = mkdtempSync(join(tmpdir(), 'nightshift-search-'));
    const dir = join(evidenceDir, `incident-${incidentId}`, 'run-1');
    mkdirSync(dir, { recursive: true });
    // The match's 80 bytes of context start inside "PASSWORD", after its first four letters.
    writeFileSync(join(dir, 'env.txt'), `PASSWORD=${SECRET}${' '.repeat(62)}NEEDLE and more`);
    // A wide string, as Python keeps some text: one byte of padding first, so it sits at an odd offset.
    writeFileSync(
      join(dir, 'wide.bin'),
      Buffer.concat([
        Buffer.from([0xff]),
        Buffer.from(`PASSWORD=${SECRET}${' '.repeat(62)}WIDEONE and more`, 'utf16le'),
        Buffer.from([0, 0, 0xfe]),
      ]),
    );
    // An ASCII match beside a wide string that names a secret.
    writeFileSync(
      join(dir, 'mixed.bin'),
      Buffer.concat([Buffer.from(`PASSWORD=${SECRET}`, 'utf16le'), Buffer.from(' MIXEDONE here')]),
    );
  });
  after(() => rmSync(evidenceDir, { recursive: true, force: true }));
  const ctx = () => ({ evidenceDir, incidentId, knownSecrets: new KnownSecrets() }) as unknown as ToolContext;

  it('refuses patterns that would guess a secret', async () => {
    for (const pattern of [
      'PASSWORD=hun',
      'password = h',
      'TOKEN:abc',
      'API_KEY=x',
      'client_secret=',
      'AWS_SECRET_ACCESS_KEY=wJal',
      'Authorization: Bearer ey',
      'Bearer abc',
      'xoxb-1234',
      'sk-ant-api03',
      'AKIAIOSFOD',
      'ghp_abcd',
      'postgres://app:hun',
    ])
      assert.ok(guessesASecret(pattern), `${pattern} must be refused`);
    for (const pattern of ['NEEDLE', 'disk-usage', 'icy-name', 'GET /stream', 'PASSWORD', 'ask-me'])
      assert.equal(guessesASecret(pattern), undefined, `${pattern} is an ordinary search`);
    const known = new KnownSecrets();
    known.add([SECRET]);
    assert.ok(guessesASecret(`x${SECRET}`, known), 'a value already hidden is refused');
    const refused = await callTool(
      [searchEvidence],
      use('search_evidence', { pattern: 'PASSWORD=hun' }),
      ctx(),
    );
    assert.equal(refused.result.is_error, true);
    assert.match(text(refused.result.content), /did not run/);
  });

  it('redacts a match’s context even when the secret’s name lies outside it', async () => {
    const found = await callTool([searchEvidence], use('search_evidence', { pattern: 'NEEDLE' }), ctx());
    const shown = text(found.result.content);
    assert.match(shown, /1 match\(es\)/);
    assert.match(shown, /env\.txt @ 84: WORD=\[REDACTED\] +NEEDLE and more/);
    assert.ok(!shown.includes(SECRET), shown);
    assert.ok(!shown.includes('hunter'), shown);
  });

  it('hides a wide secret in an ASCII match’s context, where it shows a dot for each NUL', async () => {
    const found = await callTool([searchEvidence], use('search_evidence', { pattern: 'MIXEDONE' }), ctx());
    const shown = text(found.result.content);
    assert.match(shown, /mixed\.bin @ 45: P\.A\.S\.S\.W\.O\.R\.D\.=\.\[REDACTED\]\. MIXEDONE here/);
    assert.ok(!shown.includes('h.u.n'), shown);
  });

  it('strings_around refuses a value that would guess a secret by whether it is found', async () => {
    const refused = await callTool(
      [stringsAround],
      use('strings_around', { file: 'run-1/env.txt', value: 'PASSWORD=hun' }),
      ctx(),
    );
    assert.equal(refused.result.is_error, true);
    assert.match(text(refused.result.content), /did not run/);
  });

  it('finds a UTF-16LE copy of the pattern and shows its context as text, redacted the same way', async () => {
    const found = await callTool([searchEvidence], use('search_evidence', { pattern: 'WIDEONE' }), ctx());
    const shown = text(found.result.content);
    assert.match(shown, /1 match\(es\)/);
    // 1 byte of padding + 84 characters of two bytes each.
    assert.match(shown, /wide\.bin @ 169 \(UTF-16LE\): WORD=\[REDACTED\] +WIDEONE and more\.\n/);
    assert.ok(!shown.includes('hunter'), shown);
  });
});
