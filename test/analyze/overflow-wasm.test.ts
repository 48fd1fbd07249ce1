import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  byKey,
  EvidenceCollector,
  evidenceKey,
  MAX_DISTINCT_PER_KIND,
  type OverflowEntry,
  type OverflowSpill,
} from '../../src/analyze/evidence.ts';
import type { EvidenceKind } from '../../src/analyze/extract.ts';
import type { StringEncoding } from '../../src/analyze/strings.ts';
import { newOverflowTable } from '../../src/analyze/wasm/overflow-wasm.ts';

/** Decodes a run in spill.ts's format: u32 key length, u32 count, u8 encoding, UTF-8 key. */
function decode(run: Uint8Array): OverflowEntry[] {
  const bytes = Buffer.from(run.buffer, run.byteOffset, run.length);
  const entries: OverflowEntry[] = [];
  for (let at = 0; at < bytes.length; ) {
    const length = bytes.readUInt32LE(at);
    const key = bytes.toString('utf8', at + 9, at + 9 + length);
    entries.push([key, bytes.readUInt32LE(at + 4), bytes[at + 8] === 0 ? 'ascii' : 'utf16le']);
    at += 9 + length;
  }
  return entries;
}

/** A spill port that keeps its runs in memory, decoded, whichever way they were written. */
class MemorySpill implements OverflowSpill {
  readonly runs: OverflowEntry[][] = [];
  write(entries: readonly OverflowEntry[]): string {
    this.runs.push([...entries]);
    return `run-${this.runs.length}`;
  }
  writeRun(run: Uint8Array): string {
    this.runs.push(decode(run));
    return `run-${this.runs.length}`;
  }
}

describe('the WebAssembly overflow table', () => {
  it('counts keys, and lays them out sorted by code unit as one run', () => {
    const table = newOverflowTable();
    assert.ok(table, 'overflow.wasm loads');
    const values: Array<[EvidenceKind, string, number, StringEncoding]> = [
      ['url', 'http://b.example/2', 1, 'ascii'],
      ['url', 'http://a.example/1', 2, 'ascii'],
      ['request', 'GET /feeds?customer=4711', 1, 'utf16le'],
      ['url', 'http://b.example/2', 3, 'ascii'],
      ['env', 'PATH=/usr/bin', 1, 'ascii'],
      ['environment', 'production', 1, 'ascii'],
      ['url', `http://long.example/${'x'.repeat(490)}…`, 1, 'ascii'],
      ['url', 'http://long.example/', 1, 'ascii'],
      ['url', 'http://a.example/12345678', 1, 'ascii'],
    ];
    for (const [kind, value, count, encoding] of values) assert.ok(table.add(kind, value, count, encoding));
    assert.equal(table.size, 8);
    const expected = new Map<string, OverflowEntry>();
    for (const [kind, value, count, encoding] of values) {
      const key = evidenceKey(kind, value);
      const entry = expected.get(key);
      if (entry) entry[1] += count;
      else expected.set(key, [key, count, encoding]);
    }
    const sorted = [...expected.values()].sort((a, b) => byKey(a[0], b[0]));
    assert.deepEqual(decode(table.run()), sorted);
    table.reset();
    assert.equal(table.size, 0);
    assert.deepEqual(decode(table.run()), []);
  });

  it('sorts many keys that share long prefixes, end inside one another, or hold NULs, as byKey does', () => {
    const table = newOverflowTable();
    assert.ok(table);
    let seed = 11;
    const next = (n: number) => {
      seed = (seed * 1664525 + 1013904223) >>> 0;
      return seed % n;
    };
    const stems = [
      '',
      'a',
      'https://api3.example.com/v1/items/',
      'https://api3.example.com/v1/items',
      '\u0000\u0000x',
    ];
    const values = new Set<string>();
    while (values.size < 5_000) {
      const stem = stems[next(stems.length)]!;
      // Short tails over a small alphabet, NUL and '…' included: many keys end where others go on.
      let tail = '';
      for (let n = next(12); n > 0; n--) tail += 'ab\u0000z…'[next(5)];
      values.add(`${stem}${tail}`);
    }
    const kinds: EvidenceKind[] = ['url', 'request', 'sql'];
    const keys: string[] = [];
    for (const value of values) {
      const kind = kinds[next(kinds.length)]!;
      if (!table.add(kind, value, 1, 'ascii')) break;
      keys.push(evidenceKey(kind, value));
    }
    assert.ok(keys.length > 1_000, `${keys.length} keys in one table`);
    const run = decode(table.run()).map((e) => e[0]);
    assert.deepEqual(run, [...new Set(keys)].sort(byKey));
  });

  it('says when it is full, and a collector then spills it and goes on: runs sorted, each key once, no occurrence lost', () => {
    const spill = new MemorySpill();
    const collector = new EvidenceCollector({ spill });
    const noise = 100_000;
    for (let i = 0; i < MAX_DISTINCT_PER_KIND + noise; i++)
      collector.add({ kind: 'url', value: `http://noise.test/${i % 7}/${i}`, count: 1, encoding: 'ascii' });
    // Past the cap and seen again, within a run and across runs.
    for (let i = MAX_DISTINCT_PER_KIND; i < MAX_DISTINCT_PER_KIND + noise; i += 1000)
      collector.add({ kind: 'url', value: `http://noise.test/${i % 7}/${i}`, count: 2, encoding: 'ascii' });
    const snapshot = collector.snapshot();
    assert.equal(snapshot.dropped, 0);
    assert.ok(spill.runs.length >= 2, `${spill.runs.length} runs: the table filled up at least once`);
    const totals = new Map<string, number>();
    for (const run of spill.runs) {
      for (let i = 1; i < run.length; i++) assert.ok(byKey(run[i - 1]![0], run[i]![0]) < 0, 'sorted, unique');
      for (const [key, count] of run) totals.set(key, (totals.get(key) ?? 0) + count);
    }
    assert.equal(totals.size, noise);
    let occurrences = 0;
    for (const count of totals.values()) occurrences += count;
    assert.equal(occurrences, noise + 2 * (noise / 1000));
    assert.equal(
      totals.get(
        evidenceKey(
          'url',
          `http://noise.test/${(MAX_DISTINCT_PER_KIND + 5000) % 7}/${MAX_DISTINCT_PER_KIND + 5000}`,
        ),
      ),
      3,
    );
  });

  it('counts a run the spill refuses as dropped', () => {
    const refusing: OverflowSpill = { write: () => undefined, writeRun: () => undefined };
    const collector = new EvidenceCollector({ spill: refusing });
    for (let i = 0; i < MAX_DISTINCT_PER_KIND + 10; i++)
      collector.add({ kind: 'sql', value: `SELECT ${i} FROM t`, count: 1, encoding: 'ascii' });
    assert.equal(collector.snapshot().dropped, 10);
  });
});
