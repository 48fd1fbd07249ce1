import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EvidenceCollector, MAX_DISTINCT_PER_KIND } from '../../src/analyze/evidence.ts';
import { type ByteValueKind, StringScanner } from '../../src/analyze/strings.ts';
import { newSpillConfig, RunReader, SpillStore } from '../../src/evidence/spill.ts';

/**
 * The fast paths for URLs and request lines (url_fast, request_fast in src/analyze/wasm/strings.c;
 * EvidenceCollector.valueBytes) must give
 * what the JavaScript path gives, value for value and count for count, whatever the string: the
 * same heap is scanned both ways and the two collectors' snapshots, runs included, compared.
 */

const dir = mkdtempSync(join(tmpdir(), 'nightshift-url-bytes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Secret markers of redact.ts in mixed case, and values the redaction rules take. */
const SECRET_BITS = [
  'user:hunter2hunter2@',
  '?token=abcdefgh12345678',
  '&Api_Key=zz99zz99zz99',
  '/AKIAABCDEFGHIJKLMNOP/',
  '/xoxb-1234567890-abcdef',
  '/ghp_abcdefghijklmnopqrstuvwxyz012',
  '/sk-ant-abcdefghijklmnopqrstuv',
  '/eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.abcdefghijk',
  '/hooks.slack.com/services/T000/B000/XXXX',
  '/PassWord/',
  '/SECRETS/',
  '/aUtH/',
  '/digest/',
  '/github_pat_abc',
  '/Gh_s_',
  '/gHo_x',
  '/rk_live_abcdefghijkl',
  '/AIzaSyA-abcdefghijklmnopqrstuvwxyz0123',
  '/bearer/',
  '/basicauth/',
  '/credentials.json',
  '/private/',
  '/monkey/',
];

/** A log line with a request in it, or one of the shapes REQUEST_LINE must refuse or treats apart. */
function requestLine(i: number, id: number, next: () => number): string {
  const path = `/api/feeds/${id}?customer=${i % 5000}`;
  const r = next();
  if (r < 0.6) return `2026-12-03 10:00:00,123 INFO worker[1] GET ${path} HTTP/1.1 200 ${i % 900}ms`;
  if (r < 0.65) return `POST ${path}${SECRET_BITS[i % SECRET_BITS.length]} HTTP/1.0`;
  if (r < 0.7) return `GET /${'y'.repeat(505 + (i % 20))} HTTP/1.1`;
  if (r < 0.73) return `XGET ${path} HTTP/1.1 and _PUT /x HTTP/1.1 and [DELETE /gone/${i} HTTP/2`;
  if (r < 0.76) return `GET ${path} HTTP/x GET  /double HTTP/1.1 HEAD /h${i} HTTP/1.1GET /b${i} HTTP/2.0.1`;
  if (r < 0.79) return `OPTIONS * HTTP/1.1 CONNECT /c${i % 50} HTTP/1.1 PATCH /${'z'.repeat(2050)} HTTP/1.1`;
  if (r < 0.82) return `GET /same/path HTTP/1.1`;
  if (r < 0.85) return `GET /${'w'.repeat(2046 + (i % 4))} HTTP/1.1`;
  if (r < 0.88) return `Error: GET ${path} HTTP/1.1 failed`;
  return `DELETE /items/${id} HTTP/1.1\tGET /tab/${i} HTTP/1.1`;
}

/** Strings of the shapes a web worker's heap holds, and the ones the fast path must refuse. */
function heap(seed: number, strings: number): Buffer {
  const next = random(seed);
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]!;
  const parts: string[] = [];
  for (let i = 0; i < strings; i++) {
    const id = Math.floor(next() * 1e9);
    const url = `http${next() < 0.5 ? 's' : ''}://api${i % 7}.example.com/v1/items/${id}?page=${i % 97}`;
    const r = next();
    if (r < 0.3) parts.push(`{"id": ${i}, "url": "${url}", "tags": ["feeds"]}`);
    else if (r < 0.35) parts.push(`<a href="${url}">x</a> and ${url}/more`);
    else if (r < 0.38) parts.push(`${url}${pick(SECRET_BITS)}`);
    else if (r < 0.4) parts.push(`redis://cache${i}:6379/0 then ${url}`);
    else if (r < 0.41) parts.push(`see ${url}/${'x'.repeat(500 + (i % 30))}`);
    else if (r < 0.42)
      parts.push(`xhttps://a${i}.test/ HTTP://UPPER.test/ http://"q" https:// http://a/http://b${i}`);
    else if (r < 0.43) parts.push(`GET ${url.replace(/^https?:\/\/[^/]+/, '')} HTTP/1.1 from ${url}`);
    else if (r < 0.9) parts.push(requestLine(i, id, next));
    else if (r < 0.91) parts.push(`ftp://files${i}.test/a://b`);
    else if (r < 0.92) parts.push(`DATABASE_URL=${url}`);
    else if (r < 0.93) parts.push(`http://copy.example.com/same`);
    else parts.push(`http://noise${seed}.test/path/${i}/${id}`);
  }
  // NULs between strings, and a non-printable byte now and then inside one.
  return Buffer.from(
    parts.join('\u0000\u0000').replace(/ and /g, (m) => (next() < 0.1 ? '\u0001' : m)),
    'latin1',
  );
}

function scan(bytes: Buffer, fast: boolean) {
  const collector = new EvidenceCollector({ spill: new SpillStore(newSpillConfig(dir, 1 << 30)) });
  const scanner = new StringScanner(collector.onString, {
    skipPlain: true,
    values: fast ? collector.valueBytes : undefined,
  });
  const taken = { url: 0, request: 0 };
  const counting = collector.valueBytes;
  if (fast) {
    // Count what the fast path takes, to show it is used (and so that this test can fail).
    const value = counting.value;
    Object.assign(counting, {
      value: (kind: ByteValueKind, b: Uint8Array, s: number, e: number) => {
        taken[kind]++;
        value(kind, b, s, e);
      },
    });
  }
  for (let at = 0; at < bytes.length; at += 256 * 1024) scanner.push(bytes.subarray(at, at + 256 * 1024));
  scanner.flush();
  const snapshot = collector.snapshot();
  // The runs merged into one map of key -> count, encoding: what the merge would see.
  const spilled = new Map<string, number>();
  for (const path of snapshot.runs) {
    const reader = new RunReader(path);
    while (reader.next()) spilled.set(reader.key, (spilled.get(reader.key) ?? 0) + reader.count);
  }
  const items = snapshot.items
    .map((i) => `${i.kind}\u0000${i.value}\u0000${i.count}\u0000${i.encoding}`)
    .sort();
  return { snapshot, items, spilled, taken };
}

describe('URLs and request lines found in WebAssembly (url_fast, request_fast)', () => {
  for (const seed of [1, 2, 3]) {
    it(`counts what the JavaScript path counts, secrets redacted, other schemes and long values included (seed ${seed})`, () => {
      const bytes = heap(seed, 4 * MAX_DISTINCT_PER_KIND);
      const js = scan(bytes, false);
      const fast = scan(bytes, true);
      assert.ok(fast.taken.url > 5_000, `the fast path took ${fast.taken.url} URLs`);
      assert.ok(fast.taken.request > 500, `the fast path took ${fast.taken.request} requests`);
      assert.deepEqual(js.taken, { url: 0, request: 0 });
      assert.equal(fast.snapshot.strings, js.snapshot.strings);
      assert.equal(fast.snapshot.redactions, js.snapshot.redactions);
      assert.ok(js.snapshot.redactions > 100, 'the heap holds secrets');
      assert.deepEqual(fast.snapshot.secrets.sort(), js.snapshot.secrets.sort());
      assert.deepEqual(fast.items, js.items);
      assert.equal(fast.spilled.size, js.spilled.size);
      for (const [key, count] of js.spilled) assert.equal(fast.spilled.get(key), count, key);
    });
  }

  it('is not used for a kind before the collector sends every value of it to its overflow table', () => {
    const collector = new EvidenceCollector({ spill: new SpillStore(newSpillConfig(dir, 1 << 30)) });
    assert.equal(collector.valueBytes.accepting('url'), false);
    for (let i = 0; i < MAX_DISTINCT_PER_KIND; i++) collector.onString(`http://host.test/${i}`, 0, 'ascii');
    assert.equal(collector.valueBytes.accepting('url'), true);
    assert.equal(collector.valueBytes.accepting('request'), false);
    assert.equal(new EvidenceCollector().valueBytes.accepting('url'), false, 'no spill, no fast path');
  });
});
