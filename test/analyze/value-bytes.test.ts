import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EvidenceCollector, MAX_DISTINCT_PER_KIND, MAX_STORED_CHARS } from '../../src/analyze/evidence.ts';
import { MAYBE_SECRET } from '../../src/analyze/redact.ts';
import { type ByteValueKind, StringScanner } from '../../src/analyze/strings.ts';
import { newSpillConfig, RunReader, SpillStore } from '../../src/evidence/spill.ts';

/**
 * The fast paths for URLs, request lines and SQL (url_fast, request_fast, sql_fast in src/analyze/wasm/strings.c;
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

/** SQL as ORMs send it, and the shapes extract.ts's SQL pattern treats apart. */
function sqlStatement(i: number, id: number, next: () => number): string {
  const r = next();
  if (r < 0.5) return `SELECT id, name FROM feeds WHERE customer_id = ${i % 5000} AND id > ${id} LIMIT 50`;
  if (r < 0.55) return `INSERT  INTO events (id) VALUES (${id}); UPDATE feeds SET n = ${i} WHERE id = 1;`;
  if (r < 0.6) return `UPDATE ${'t'.repeat(195 + (i % 10))} SET a = ${i} ; DELETE FROM x${i}`;
  if (r < 0.65) return `UPDATE users SET password = 'hunter${id}' WHERE id = ${i}`;
  if (r < 0.68) return `SELECT a,  b FROM t${i} WHERE x = 1`;
  if (r < 0.71) return `SELECT ${'c, '.repeat(180 + (i % 10))}d FROM wide${i}`;
  if (r < 0.74) return `XSELECT a FROM b${i} _DELETE FROM c${i} (SELECT 1 FROM d${i} ) `;
  if (r < 0.77) return `SELECT FROM t${i} SELECT x FROM (SELECT y FROM z${i}) ; UPDATE  u${i}  SET v=1`;
  if (r < 0.8) return `SELECT * FROM feeds`;
  if (r < 0.83) return `DELETE FROM sessions WHERE id = ${id} `;
  if (r < 0.86) return `INSERT INTO log VALUES (${i}) then SELECT ${'x'.repeat(1990 + (i % 20))} FROM far`;
  if (r < 0.9) return `SELECT a FROM b WHERE c = 'd' AND e LIKE '%Error%'`;
  return `UPDATE feeds SET checked_at = now() WHERE id = ${id}; SELECT 1 FROM dual`;
}

/**
 * Strings of a generated heap: many times MAX_DISTINCT_PER_KIND, so every kind overflows and its fast
 * path is taken, and enough of them for thousands of values and hundreds of secrets whatever the cap.
 */
const HEAP_STRINGS = Math.max(4 * MAX_DISTINCT_PER_KIND, 80_000);

/** Strings of the shapes a web worker's heap holds, and the ones the fast path must refuse. */
/** `share`: of the strings, how many are log lines with requests and how many SQL. */
function heap(seed: number, strings: number, share: { requests: number; sql: number }): Buffer {
  const next = random(seed);
  const requestsTo = 0.43 + share.requests;
  const sqlTo = requestsTo + share.sql;
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]!;
  const parts: string[] = [];
  for (let i = 0; i < strings; i++) {
    const id = Math.floor(next() * 1e9);
    const url = `http${next() < 0.5 ? 's' : ''}://api${i % 7}.example.com/v1/items/${id}?page=${i % 97}`;
    const r = next();
    if (r >= 0.43 && r < sqlTo) {
      parts.push(r < requestsTo ? requestLine(i, id, next) : sqlStatement(i, id, next));
      continue;
    }
    if (r < 0.3) parts.push(`{"id": ${i}, "url": "${url}", "tags": ["feeds"]}`);
    else if (r < 0.35) parts.push(`<a href="${url}">x</a> and ${url}/more`);
    else if (r < 0.38) parts.push(`${url}${pick(SECRET_BITS)}`);
    else if (r < 0.4) parts.push(`redis://cache${i}:6379/0 then ${url}`);
    else if (r < 0.41) parts.push(`see ${url}/${'x'.repeat(500 + (i % 30))}`);
    else if (r < 0.415)
      parts.push(
        `httpss://n${i}.test http://http://d${i}.test https://a.testhttp://b${i} hhttp://c${i}.test/:// http:/x${i} ://`,
      );
    else if (r < 0.42)
      parts.push(`xhttps://a${i}.test/ HTTP://UPPER.test/ http://"q" https:// http://a/http://b${i}`);
    else if (r < 0.43) parts.push(`GET ${url.replace(/^https?:\/\/[^/]+/, '')} HTTP/1.1 from ${url}`);
    else if (r < sqlTo + 0.01) parts.push(`ftp://files${i}.test/a://b`);
    else if (r < sqlTo + 0.02) parts.push(`DATABASE_URL=${url}`);
    else if (r < sqlTo + 0.03) parts.push(`http://copy.example.com/same`);
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
  const taken = { url: 0, request: 0, sql: 0 };
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
  // Each heap has enough of one kind for it to overflow, so its fast path is taken.
  const heaps = [
    { seed: 1, kind: 'request', share: { requests: 0.47, sql: 0 } },
    { seed: 2, kind: 'sql', share: { requests: 0, sql: 0.55 } },
    { seed: 3, kind: 'request', share: { requests: 0.3, sql: 0.2 } },
  ] as const;
  for (const { seed, kind, share } of heaps) {
    it(`counts what the JavaScript path counts, secrets redacted, other schemes and long values included (seed ${seed})`, () => {
      const bytes = heap(seed, HEAP_STRINGS, share);
      const js = scan(bytes, false);
      const fast = scan(bytes, true);
      assert.ok(fast.taken.url > 5_000, `the fast path took ${fast.taken.url} URLs`);
      assert.ok(fast.taken[kind] > 500, `the fast path took ${fast.taken[kind]} values of ${kind}`);
      assert.deepEqual(js.taken, { url: 0, request: 0, sql: 0 });
      assert.equal(fast.snapshot.strings, js.snapshot.strings);
      assert.equal(fast.snapshot.redactions, js.snapshot.redactions);
      assert.ok(js.snapshot.redactions > 100, 'the heap holds secrets');
      assert.deepEqual(fast.snapshot.secrets.sort(), js.snapshot.secrets.sort());
      assert.deepEqual(fast.items, js.items);
      assert.equal(fast.spilled.size, js.spilled.size);
      for (const [key, count] of js.spilled) assert.equal(fast.spilled.get(key), count, key);
    });
  }

  it('is used for every kind once long values spent the characters a collector keeps, counts unchanged', () => {
    // Values of 400 characters: MAX_STORED_CHARS turns one away long before a kind holds
    // MAX_DISTINCT_PER_KIND; from then on every kind goes to the overflow, kept values included.
    const long = (i: number) => `http://host.test/${String(i).padStart(6, '0')}/${'p'.repeat(380)}`;
    const collector = new EvidenceCollector({ spill: new SpillStore(newSpillConfig(dir, 1 << 30)) });
    let fed = 0;
    while (!collector.valueBytes.accepting('url') && fed < MAX_DISTINCT_PER_KIND)
      collector.onString(long(fed++), 0, 'ascii');
    assert.equal(fed, Math.floor(MAX_STORED_CHARS / long(0).length) + 1, 'taken once one did not fit');
    assert.equal(collector.valueBytes.accepting('request'), true, 'every kind');
    // A value kept before, seen again: its occurrence goes to the overflow and the merge adds it.
    collector.onString(long(0), 0, 'ascii');
    const snapshot = collector.snapshot();
    const kept = snapshot.items.find((i) => i.value === long(0));
    let spilled = 0;
    for (const path of snapshot.runs) {
      const reader = new RunReader(path);
      while (reader.next()) if (reader.key === `url\u0000${long(0)}`) spilled += reader.count;
    }
    assert.equal((kept?.count ?? 0) + spilled, 2);
  });

  it('is not used for a kind before the collector sends every value of it to its overflow table', () => {
    const collector = new EvidenceCollector({ spill: new SpillStore(newSpillConfig(dir, 1 << 30)) });
    assert.equal(collector.valueBytes.accepting('url'), false);
    for (let i = 0; i < MAX_DISTINCT_PER_KIND; i++) collector.onString(`http://host.test/${i}`, 0, 'ascii');
    assert.equal(collector.valueBytes.accepting('url'), true);
    assert.equal(collector.valueBytes.accepting('request'), false);
    assert.equal(new EvidenceCollector().valueBytes.accepting('url'), false, 'no spill, no fast path');
  });
});

describe('strings without a redaction marker (REC_NO_SECRET in strings.c)', () => {
  const markers = MAYBE_SECRET.source
    .split('|')
    .flatMap((m) => (m === 'gh[pousr]_' ? [...'pousr'].map((c) => `gh${c}_`) : [m.replace(/\\/g, '')]));

  it('are told apart from every string that holds one, in any case, at any place', () => {
    const said = new Map<string, boolean | undefined>();
    const scanner = new StringScanner((text, _o, _e, _t, noMarkers) => said.set(text, noMarkers), {
      skipPlain: true,
    });
    const holding: string[] = [];
    markers.forEach((marker, i) => {
      for (const m of [
        marker,
        marker.toUpperCase(),
        [...marker].map((c, k) => (k % 2 ? c.toUpperCase() : c)).join(''),
      ])
        for (let pad = 0; pad < 18; pad += 5)
          holding.push(`{"url": "https://h${i}.test/${'q'.repeat(pad)}${m}", "n": 1}`);
    });
    const without = [
      '{"url": "https://plain.test/zz", "n": 1}',
      'INFO GET /x HTTP/1.1 from https://a.test/b',
    ];
    scanner.push(Buffer.from(`\u0000${[...holding, ...without].join('\u0000')}\u0000`, 'latin1'));
    scanner.flush();
    for (const text of holding) assert.equal(said.get(text), false, text);
    for (const text of without) assert.equal(said.get(text), true, text);
  });

  it('give the values and redactions the JavaScript scanner gives, which runs the secret test on each', () => {
    const bytes = heap(7, HEAP_STRINGS / 2, { requests: 0.3, sql: 0.2 });
    const collect = (engine: 'wasm' | 'js') => {
      const collector = new EvidenceCollector();
      const scanner = new StringScanner(collector.onString, { engine, skipPlain: true });
      for (let at = 0; at < bytes.length; at += 256 * 1024) scanner.push(bytes.subarray(at, at + 256 * 1024));
      scanner.flush();
      return collector.snapshot();
    };
    const wasm = collect('wasm');
    const js = collect('js');
    assert.ok(js.redactions > 100, 'the heap holds secrets');
    assert.equal(wasm.redactions, js.redactions);
    assert.deepEqual(wasm.secrets.sort(), js.secrets.sort());
    const items = (s: typeof js) => s.items.map((i) => `${i.kind}\u0000${i.value}\u0000${i.count}`).sort();
    assert.deepEqual(items(wasm), items(js));
  });
});

describe('the secret test of the fast paths (may_hold_secret in strings.c)', () => {
  /** Every alternative of MAYBE_SECRET, its character class and escapes spelled out. */
  const markers = MAYBE_SECRET.source
    .split('|')
    .flatMap((m) => (m === 'gh[pousr]_' ? [...'pousr'].map((c) => `gh${c}_`) : [m.replace(/\\/g, '')]))
    .map((m) => m.replace(/ /g, '_'));

  it('leaves to JavaScript every URL, request and statement MAYBE_SECRET matches, in any case', () => {
    assert.ok(markers.length >= 25, markers.join(' '));
    const taken: string[] = [];
    const given: string[] = [];
    const scanner = new StringScanner((text) => given.push(text), {
      skipPlain: true,
      values: {
        accepting: () => true,
        string: () => true,
        value: (_k, b, s, e) => taken.push(Buffer.from(b.subarray(s, e)).toString('latin1')),
      },
    });
    const strings: string[] = [];
    markers.forEach((marker, i) => {
      const cased = [...marker].map((c, k) => ((i + k) % 2 ? c.toUpperCase() : c.toLowerCase())).join('');
      for (const m of [marker, marker.toUpperCase(), cased]) {
        strings.push(
          `{"u": "https://h${i}.test/a${m}b"}`,
          `x GET /p/${m} HTTP/1.1`,
          `SELECT ${m} FROM t${i}`,
        );
      }
    });
    // At every place in a 16-byte step of the SIMD loop, and straddling two steps.
    for (const marker of markers)
      for (let pad = 0; pad < 18; pad++)
        strings.push(`https://h.test/${'p'.repeat(pad)}${marker.toUpperCase()}`);
    // And values without a marker, which the fast paths take.
    strings.push('{"u": "https://plain.test/zz"}', 'x GET /plain/zz HTTP/1.1', 'SELECT n FROM zz');
    scanner.push(Buffer.from(`\u0000${strings.join('\u0000')}\u0000`, 'latin1'));
    scanner.flush();
    assert.deepEqual(taken, ['https://plain.test/zz', 'GET /plain/zz', 'SELECT n FROM zz']);
    for (const text of strings.slice(0, -3)) assert.ok(given.includes(text), text);
  });
});
