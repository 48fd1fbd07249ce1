import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { streamReasons } from '../../src/analyze/correlate.ts';
import {
  byKey,
  type EvidenceItem,
  type EvidenceSnapshot,
  evidenceKey,
  type OverflowEntry,
} from '../../src/analyze/evidence.ts';
import type { EvidenceKind } from '../../src/analyze/extract.ts';
import type { StringEncoding } from '../../src/analyze/strings.ts';
import { wasmMergeAvailable } from '../../src/analyze/wasm/merge-wasm.ts';
import {
  MAX_PROMOTED,
  type ResolveOptions,
  resolveOverflow,
  TOP_PER_KIND,
} from '../../src/evidence/overflow.ts';
import { ScanPool } from '../../src/evidence/pool.ts';
import { newSpillConfig, RunWriter, runPath, type SpillConfig } from '../../src/evidence/spill.ts';

/**
 * The WebAssembly merge (merge.c) hands JavaScript only the keys that can change the result; the
 * JavaScript merge looks at every key. Both must leave the snapshots exactly alike: items, counts,
 * encodings, order, unlistedElsewhere. Randomized sets of dumps, each a seed apart.
 */

/** mulberry32: a small seeded generator, so a failing case can be run again by its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** One dump as the collectors leave it: kept items, and runs of entries (each sorted, each key once). */
interface DumpPlan {
  items: EvidenceItem[];
  runs: OverflowEntry[][];
}

/** Values of the kinds merge.c and rank() tell apart: streams, furniture, '…' clipped, ties. */
function valuePool(next: () => number, size: number): Array<[EvidenceKind, string]> {
  const shapes: Array<(i: number) => [EvidenceKind, string]> = [
    (i) => ['url', `http://shop${i % 97}.example/item/${i}`],
    (i) => ['url', `http://radio${i % 5}.example.net/live/stream${i}.mp3`],
    (i) => ['url', `https://docs.python.org/3/library/${i}.html`],
    (i) => ['url', `http://long.example/${'x'.repeat(i % 40)}${i}…`],
    (i) => ['request', `GET /api/feeds/refresh?customer=${i}`],
    (i) => ['request', `POST http://stream${i % 3}.example/listen/${i} HTTP/1.1`],
    (i) => ['exception', `ValueError: bad value ${i}`],
    (i) => ['header', i % 2 ? `content-type: audio/mpeg; v=${i}` : `icy-name: station ${i}`],
    (i) => ['env', `VAR_${i}=value ${i}`],
    // A kind whose name starts with another's: keys of 'env' sort before all of these.
    (i) => ['environment', `production-${i}`],
    (i) => ['sql', `SELECT * FROM t${i % 7} WHERE id = ${i}`],
    (i) => ['frame', `File "/app/feeds.py", line ${i}, in fetch_feed`],
  ];
  const pool: Array<[EvidenceKind, string]> = [];
  for (let i = 0; i < size; i++) pool.push(shapes[Math.floor(next() * shapes.length)]!(i));
  return pool;
}

function plan(seed: number): DumpPlan[] {
  const next = random(seed);
  const pick = (n: number) => Math.floor(next() * n);
  const dumps = seed % 4 === 0 ? 1 : 2 + pick(4);
  // Large enough, one seed in three, that candidates pass MAX_PROMOTED and spilled values a top.
  const big = seed % 3 === 0;
  const pool = valuePool(next, big ? 3 * MAX_PROMOTED : 600);
  const encoding = (): StringEncoding => (next() < 0.1 ? 'utf16le' : 'ascii');
  const count = () => (next() < 0.6 ? 1 : 1 + pick(next() < 0.9 ? 4 : 5000));
  return Array.from({ length: dumps }, (): DumpPlan => {
    // Each dump draws on part of the pool: shared with some dumps, not with others.
    const share = 0.2 + next() * 0.6;
    const mine = pool.filter(() => next() < share);
    const items: EvidenceItem[] = [];
    for (const [kind, value] of mine)
      if (next() < 0.15) items.push({ kind, value, count: count(), encoding: encoding() });
    const runCount = pick(big ? 8 : 6);
    const runs: OverflowEntry[][] = [];
    for (let r = 0; r < runCount; r++) {
      const entries = new Map<string, OverflowEntry>();
      for (const [kind, value] of mine) {
        // Kept values are spilled too (a full kind sends them there), as are values of other runs.
        if (next() < 0.35) {
          const key = evidenceKey(kind, value);
          entries.set(key, [key, count(), encoding()]);
        }
      }
      runs.push([...entries.values()].sort((a, b) => byKey(a[0], b[0])));
    }
    return { items, runs };
  });
}

function writeRun(config: SpillConfig, entries: readonly OverflowEntry[]): string {
  const writer = new RunWriter(runPath(config));
  for (const [key, count, encoding] of entries) writer.add(key, count, encoding);
  writer.close();
  return writer.path;
}

/** Fresh snapshots (and run files) of a plan: each engine consumes its own. */
function snapshotsOf(plans: readonly DumpPlan[], config: SpillConfig): EvidenceSnapshot[] {
  return plans.map((p) => ({
    items: p.items.map((i) => ({ ...i })),
    redactions: 0,
    dropped: 0,
    strings: 0,
    runs: p.runs.map((entries) => writeRun(config, entries)),
    unlistedElsewhere: [],
    secrets: [],
  }));
}

/** The counts a plan's dumps hold of each key, summed by hand. */
function expectedCounts(plans: readonly DumpPlan[]): Array<Map<string, number>> {
  return plans.map((p) => {
    const counts = new Map<string, number>();
    for (const i of p.items) counts.set(evidenceKey(i.kind, i.value), i.count);
    for (const run of p.runs) for (const [key, count] of run) counts.set(key, (counts.get(key) ?? 0) + count);
    return counts;
  });
}

/**
 * deepEqual, reporting the first difference: assert's diff of two sets of tens of thousands of
 * items takes minutes.
 */
function assertSame(actual: readonly EvidenceSnapshot[], expected: readonly EvidenceSnapshot[]): void {
  assert.equal(actual.length, expected.length);
  expected.forEach((e, d) => {
    const a = actual[d]!;
    for (const field of ['items', 'unlistedElsewhere'] as const) {
      assert.equal(a[field].length, e[field].length, `dump ${d}: ${field}.length`);
      const at = e[field].findIndex((x, i) => JSON.stringify(x) !== JSON.stringify(a[field][i]));
      if (at >= 0) assert.deepEqual(a[field][at], e[field][at], `dump ${d}: ${field}[${at}]`);
    }
    assert.deepEqual({ ...a, items: [], unlistedElsewhere: [] }, { ...e, items: [], unlistedElsewhere: [] });
  });
}

/** A real worker thread for the shared resolve, and how many resolves it took a part of. */
const sharing = { pool: undefined as ScanPool | undefined, parts: 0 };
const shareOptions = (): ResolveOptions => ({
  engine: 'wasm',
  shareFromBytes: 0,
  share: async (part, onEvents) => {
    sharing.parts++;
    sharing.pool ??= new ScanPool(1);
    await sharing.pool.run({ id: sharing.parts, kind: 'resolve', part }, undefined, onEvents);
  },
});
after(() => sharing.pool?.close());

/**
 * The engines over fresh snapshots of the same plans (each consumes its own run files), held to the
 * same result: JavaScript, WebAssembly, and WebAssembly shared with a worker thread (split where
 * the runs' records are sampled: overflow-split.ts); the sets of snapshots are returned for the
 * checks that follow.
 */
async function mergeBoth(
  plans: readonly DumpPlan[],
  dir: string,
): Promise<{ js: EvidenceSnapshot[]; wasm: EvidenceSnapshot[]; shared: EvidenceSnapshot[] }> {
  const config = newSpillConfig(dir, 2 ** 40);
  const js = snapshotsOf(plans, config);
  const wasm = snapshotsOf(plans, config);
  const shared = snapshotsOf(plans, config);
  await resolveOverflow(js, config, { engine: 'js' });
  await resolveOverflow(wasm, config, { engine: 'wasm' });
  await resolveOverflow(shared, config, shareOptions());
  assertSame(wasm, js);
  assertSame(shared, js);
  // What the merge adds comes in key order, whatever order the keys were fed in (a shared resolve
  // feeds its worker's part as it comes).
  const sorted = (keys: string[]) => keys.every((k, i) => i === 0 || byKey(keys[i - 1]!, k) < 0);
  shared.forEach((snapshot, d) => {
    const added = snapshot.items.slice(plans[d]!.items.length).map((i) => evidenceKey(i.kind, i.value));
    assert.ok(sorted(added), `dump ${d}: the values added in key order`);
    assert.ok(sorted(snapshot.unlistedElsewhere), `dump ${d}: unlistedElsewhere in key order`);
  });
  return { js, wasm, shared };
}

describe('resolveOverflow: the WebAssembly merge leaves the snapshots as the JavaScript merge does', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-merge-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('merge.wasm loads', () => {
    assert.equal(wasmMergeAvailable(), true);
  });

  for (let seed = 1; seed <= 24; seed++) {
    it(`seed ${seed}`, async () => {
      const plans = plan(seed);
      const { js } = await mergeBoth(plans, dir);
      assert.deepEqual(readdirSync(dir), [], 'both delete the runs they read');
      // And what they agree on is right: every item's count is its dump's exact count.
      const counts = expectedCounts(plans);
      js.forEach((snapshot, d) => {
        for (const item of snapshot.items)
          assert.equal(item.count, counts[d]!.get(evidenceKey(item.kind, item.value)), item.value);
      });
    });
  }

  it('shared the resolve with the worker thread in the cases above whose runs could be split', () => {
    assert.ok(sharing.parts >= 12, `${sharing.parts} shared resolves`);
  });

  it('agrees past the open-run limit, where runs are merged down first (by merge.c or RunWriter, byte for byte)', async () => {
    const next = random(99);
    const pool = valuePool(next, 2_000);
    const plans: DumpPlan[] = Array.from({ length: 3 }, () => ({
      items: pool
        .filter(() => next() < 0.05)
        .map(([kind, value]) => ({ kind, value, count: 2, encoding: 'ascii' })),
      runs: Array.from({ length: 100 }, () =>
        pool
          .filter(() => next() < 0.02)
          .map(
            ([kind, value]): OverflowEntry => [
              evidenceKey(kind, value),
              1,
              next() < 0.5 ? 'ascii' : 'utf16le',
            ],
          )
          .sort((a, b) => byKey(a[0], b[0])),
      ),
    }));
    const { js } = await mergeBoth(plans, dir);
    assert.ok(js.every((s) => s.items.length > 0));
  });

  it('promotes candidates that pass a full heap by their stream-likeness, though their kind ranks lower', async () => {
    // Requests (weight 1.0) fill the promoted heap well before any URL (0.9) comes in key order (the
    // heap is full when JavaScript next tells merge.c its worst rank, between steps); a URL
    // naming a stream (x 1.6) still beats them, a plain one does not: merge.c's bound on rank must
    // let the first through and may hold the second back.
    const requests = Array.from({ length: 3 * MAX_PROMOTED }, (_, i) =>
      evidenceKey('request', `GET /api/feeds/${String(i).padStart(6, '0')}`),
    );
    const streams = Array.from({ length: 50 }, (_, i) =>
      evidenceKey('url', `http://stream.example.net/live/${i}.mp3`),
    );
    // Before the streams in key order, more frequent, and more than a top holds: the streams make no
    // top of URLs, and only their rank can list them.
    const plain = Array.from({ length: TOP_PER_KIND + 100 }, (_, i) =>
      evidenceKey('url', `http://shop.example/${i}`),
    );
    const run = (keys: string[]) =>
      keys
        .map((key): OverflowEntry => [key, key.includes('shop') ? 2 : 1, 'ascii'])
        .sort((a, b) => byKey(a[0], b[0]));
    const keptPlain = {
      kind: 'url' as const,
      value: 'http://shop.example/7',
      count: 3,
      encoding: 'ascii' as const,
    };
    const plans: DumpPlan[] = [
      { items: [], runs: [run([...requests, ...streams, ...plain])] },
      {
        items: [keptPlain],
        runs: [run([...requests, ...streams, ...plain.filter((k) => !k.endsWith('/7'))])],
      },
    ];
    const { wasm } = await mergeBoth(plans, dir);
    for (const snapshot of wasm) {
      const urls = new Set(snapshot.items.filter((i) => i.kind === 'url').map((i) => i.value));
      for (const key of streams) assert.ok(urls.has(key.slice(4)), key);
    }
    assert.deepEqual(wasm[1]!.unlistedElsewhere, [evidenceKey('url', keptPlain.value)]);
  });

  it('tells a stream by every word streamReasons looks for, in any case, anywhere in a long value, on one dump', async () => {
    // One dump: every key is a candidate. Requests fill the promoted heap first; then long URLs,
    // which only a stream factor lets in: merge.c's may_stream must find each word where it lies
    // (it compares words only at bytes that can begin one) and never hide one streamReasons sees.
    const requests = Array.from({ length: 2 * MAX_PROMOTED }, (_, i) =>
      evidenceKey('request', `GET /api/feeds/${String(i).padStart(6, '0')}`),
    );
    const pad = (i: number) =>
      Array.from({ length: 30 }, (_, k) => ((i * 31 + k) * 2654435761).toString(16).slice(-8)).join('/');
    const mixed = (word: string, i: number) =>
      [...word].map((c, k) => ((i + k) % 2 ? c.toUpperCase() : c)).join('');
    const paths = ['stream', 'streams', 'live', 'listen', 'radio', 'icecast', 'shoutcast'];
    const extensions = ['mp3', 'aac', 'm3u', 'm3u8', 'pls', 'ogg', 'opus', 'flac', 'wav', 'ts', 'm4a'];
    const hosts = ['radio', 'stream', 'icecast', 'shoutcast'];
    const streams = [
      ...paths.map((w, i) => `http://u${i}.example/${pad(i)}/${mixed(w, i)}`),
      ...extensions.map((w, i) => `http://e${i}.example/${pad(i + 10)}/x.${mixed(w, i)}`),
      ...hosts.map((w, i) => `http://my${mixed(w, i)}.example/${pad(i + 30)}`),
    ];
    for (const url of streams) assert.ok(streamReasons('url', url).length > 0, url);
    // Near misses (pieces of the words), more frequent and before the streams in key order, more
    // than a top holds: the streams make no top of URLs, and only their rank can list them.
    const plain = Array.from(
      { length: TOP_PER_KIND + 100 },
      (_, i) => `http://a${i}.example/${pad(i + 50)}/radi/.mp/liv/strea`,
    );
    const run = [...requests, ...[...streams, ...plain].map((u) => evidenceKey('url', u))]
      .map((key): OverflowEntry => [key, key.includes('://a') ? 2 : 1, 'ascii'])
      .sort((a, b) => byKey(a[0], b[0]));
    const { wasm } = await mergeBoth([{ items: [], runs: [run] }], dir);
    const urls = new Set(wasm[0]!.items.filter((i) => i.kind === 'url').map((i) => i.value));
    for (const url of streams) assert.ok(urls.has(url), url);
  });

  it('goes on past stretches of keys none of which JavaScript needs to see', async () => {
    // Dump 0 alone holds 100,000 URLs, once each: past its top of 200, none can change anything,
    // until one both dumps hold, at the very end.
    const keys = Array.from({ length: 100_000 }, (_, i) => evidenceKey('url', `http://a.example/${i}`));
    const last = evidenceKey('url', 'http://z.example/shared');
    const run = (list: string[]) =>
      list.map((key): OverflowEntry => [key, 1, 'ascii']).sort((a, b) => byKey(a[0], b[0]));
    const plans: DumpPlan[] = [
      { items: [], runs: [run([...keys, last])] },
      { items: [], runs: [run([last])] },
    ];
    const { wasm } = await mergeBoth(plans, dir);
    for (const snapshot of wasm) assert.ok(snapshot.items.some((i) => i.value === 'http://z.example/shared'));
  });

  it('fills the top heaps and the promoted heap in the big cases', async () => {
    // The seeds above exercise the caps only if their sets are big enough: held to it here.
    const plans = plan(3);
    const config = newSpillConfig(dir, 2 ** 40);
    const snapshots = snapshotsOf(plans, config);
    const before = snapshots.map((s) => s.items.length);
    await resolveOverflow(snapshots, config, { engine: 'wasm' });
    const added = snapshots.map((s, d) => s.items.length - before[d]!);
    assert.ok(plans.length >= 2);
    assert.ok(
      snapshots.some((s) => s.unlistedElsewhere.length > 0),
      'some candidate kept elsewhere did not make MAX_PROMOTED',
    );
    assert.ok(added.every((n) => n >= TOP_PER_KIND));
  });
});
