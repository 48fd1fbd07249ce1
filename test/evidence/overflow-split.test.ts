import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { byKey, type EvidenceItem, evidenceKey } from '../../src/analyze/evidence.ts';
import type { EvidenceKind } from '../../src/analyze/extract.ts';
import { boundaryIn, keptFrom, PartChannel, splitRuns } from '../../src/evidence/overflow-split.ts';
import { newSpillConfig, RunWriter, runPath } from '../../src/evidence/spill.ts';
import { until } from '../helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'nightshift-split-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const config = newSpillConfig(dir, 2 ** 40);

/** A run as a thread spills it: sorted keys of several kinds, counts up to the millions, both encodings. */
function writeRun(seed: number, n: number): { path: string; keys: string[]; starts: number[] } {
  const kinds: EvidenceKind[] = ['request', 'sql', 'url', 'header'];
  const keys = Array.from({ length: n }, (_, i) => {
    const kind = kinds[(i * 7 + seed) % kinds.length]!;
    const value =
      kind === 'url'
        ? `https://site${(i * 31 + seed) % 997}.example.com/articles/${i}/${((i * 2654435761) >>> 0).toString(16)}?ref=w${seed}`
        : kind === 'request'
          ? `GET /api/feeds/poll?customer_id=${i % 5000}&n=${i} HTTP/1.1`
          : kind === 'sql'
            ? `SELECT * FROM items WHERE id = ${i} AND owner = 'w${seed}'`
            : `x-request-id: ${i}-${'é'.repeat(i % 3)}…`;
    return evidenceKey(kind, value);
  });
  keys.sort(byKey);
  const writer = new RunWriter(runPath(config));
  const starts: number[] = [];
  let at = 0;
  keys.forEach((key, i) => {
    starts.push(at);
    writer.add(
      key,
      i % 11 === 0 ? 1 + ((i * 977) % 3_000_000) : 1 + (i % 4),
      i % 5 === 0 ? 'utf16le' : 'ascii',
    );
    at += 9 + Buffer.byteLength(key, 'utf8');
  });
  writer.close();
  return { path: writer.path, keys, starts };
}

describe('overflow-split: where a shared resolve splits the runs', () => {
  const a = writeRun(1, 20_000);
  const b = writeRun(2, 12_000);

  it('takes a place in a run for a record start only where one is (every offset of a run tried)', () => {
    const bytes = readFileSync(a.path);
    const starts = new Set(a.starts);
    let found = 0;
    for (let offset = 0; offset < 200_000; offset++) {
      const boundary = boundaryIn(bytes.subarray(offset, offset + 4096));
      if (!boundary) continue;
      found++;
      assert.ok(
        starts.has(offset + boundary.at),
        `offset ${offset}: ${offset + boundary.at} is no record's start`,
      );
      const length = bytes.readUInt32LE(offset + boundary.at);
      assert.deepEqual(
        boundary.key,
        bytes.subarray(offset + boundary.at + 9, offset + boundary.at + 9 + length),
      );
    }
    assert.ok(found > 190_000, `${found} offsets found a record start`);
  });

  it('splits at a key of the runs, about two fifths of their bytes below it, each run read from a record below it', () => {
    const split = splitRuns([undefined, a.path, b.path], 0);
    assert.ok(split);
    const key = split.key.toString('utf8');
    assert.ok(a.keys.includes(key) || b.keys.includes(key), key);
    assert.equal(split.starts[0], 0, 'a kept source starts at 0');
    let below = 0;
    let all = 0;
    for (const [i, run] of [a, b].entries()) {
      const bytes = readFileSync(run.path);
      const start = split.starts[i + 1]!;
      assert.ok(start > 0, 'a sampled start below the split key');
      const index = run.starts.indexOf(start);
      assert.ok(index >= 0, `${start} is a record's start`);
      assert.ok(byKey(run.keys[index]!, key) < 0, 'the record there is below the split key');
      const firstAbove = run.keys.findIndex((k) => byKey(k, key) >= 0);
      below += firstAbove < 0 ? bytes.length : run.starts[firstAbove]!;
      all += bytes.length;
    }
    assert.ok(below / all > 0.25 && below / all < 0.55, `${below / all} of the bytes below the split key`);
  });

  it('leaves runs alone below the size it is worth sharing from, and with no run to sample', () => {
    assert.equal(splitRuns([a.path, b.path], 1 << 30), undefined);
    assert.equal(splitRuns([undefined], 0), undefined);
  });

  it("lays out a dump's kept values from the split key on, each with its index", () => {
    const items: EvidenceItem[] = ['a', 'b', 'c', 'd'].map((v, i) => ({
      kind: 'url',
      value: `http://${v}.test/`,
      count: i + 1,
      encoding: 'ascii',
    }));
    const out = Buffer.from(keptFrom(items, Buffer.from(evidenceKey('url', 'http://b.test/'))));
    const records: Array<[string, number]> = [];
    for (let at = 0; at < out.length; ) {
      const length = out.readUInt32LE(at);
      records.push([out.toString('utf8', at + 9, at + 9 + length), out.readUInt32LE(at + 4)]);
      at += 9 + length;
    }
    assert.deepEqual(records, [
      [evidenceKey('url', 'http://b.test/'), 1],
      [evidenceKey('url', 'http://c.test/'), 2],
      [evidenceKey('url', 'http://d.test/'), 3],
    ]);
  });

  it('hands the worst of the promoted heap to another view of the same memory', () => {
    const channel = PartChannel.create();
    const view = new PartChannel(channel.buffer);
    assert.equal(view.read().rank, Number.NEGATIVE_INFINITY);
    channel.write({ rank: 1.25, dumps: 3, occurrences: 17 });
    assert.deepEqual(view.read(), { rank: 1.25, dumps: 3, occurrences: 17 });
  });

  it('wakes a worker waiting to be fed with an error once the main thread gives up', async () => {
    const channel = PartChannel.create();
    for (let i = 0; i < 4; i++) channel.posted();
    const module = new URL('../../src/evidence/overflow-split.ts', import.meta.url).href;
    const code = `import { PartChannel } from '${module}';
      import { parentPort, workerData } from 'node:worker_threads';
      const started = Date.now();
      try { new PartChannel(workerData).waitForRoom(4); parentPort.postMessage(['room', 0]); }
      catch (error) { parentPort.postMessage([error.message, Date.now() - started]); }`;
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), {
      workerData: channel.buffer,
    });
    const said: Array<[string, number]> = [];
    worker.on('message', (message: [string, number]) => said.push(message));
    try {
      await sleep(300);
      assert.deepEqual(said, [], 'still waiting');
      channel.cancel();
      await until('the worker gives up', () => said.length > 0, 5_000);
      assert.match(said[0]![0], /main thread’s part failed/);
    } finally {
      await worker.terminate();
    }
  });

  it('lets the worker post a few batches ahead of the main thread, then holds it until one is fed', async () => {
    const channel = PartChannel.create();
    for (let i = 0; i < 4; i++) channel.posted();
    // The worker's side, on a thread of its own: it blocks in waitForRoom until this thread feeds.
    const module = new URL('../../src/evidence/overflow-split.ts', import.meta.url).href;
    const code = `import { PartChannel } from '${module}';
      import { parentPort, workerData } from 'node:worker_threads';
      const channel = new PartChannel(workerData);
      const started = Date.now();
      channel.waitForRoom(5);
      parentPort.postMessage(['room for a fifth', Date.now() - started]);
      channel.waitForRoom(4);
      parentPort.postMessage(['room once one is fed', Date.now() - started]);`;
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), {
      workerData: channel.buffer,
    });
    const said: Array<[string, number]> = [];
    worker.on('message', (message: [string, number]) => said.push(message));
    try {
      await until('room for a fifth', () => said.length > 0, 5_000);
      await sleep(300);
      assert.deepEqual(
        said.map(([what]) => what),
        ['room for a fifth'],
        'held while four wait to be fed',
      );
      channel.fed(1);
      await until('room once one is fed', () => said.length > 1, 5_000);
      assert.equal(said[1]![0], 'room once one is fed');
      assert.ok(said[1]![1] >= 250, `waited ${said[1]![1]} ms`);
    } finally {
      await worker.terminate();
    }
  });
});
