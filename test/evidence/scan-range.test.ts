import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readLength } from '../../src/evidence/scan-range.ts';

const MIB = 1024 * 1024;
const PAGE = 4096;

/** The reads scanInto makes for a range, from its look-behind start to `stop`. */
function plan(from: number, end: number, stop: number, capacity = MIB): Array<[number, number]> {
  const reads: Array<[number, number]> = [];
  for (let at = from; at < stop; ) {
    const length = readLength(at, end, capacity);
    assert.ok(length > 0, `no progress at ${at}`);
    reads.push([at, length]);
    at += length;
  }
  return reads;
}

describe('readLength', () => {
  it('brings a range that starts a few bytes before a page back onto the page grid', () => {
    // The look-behind puts the first read 8 bytes before the range; reads that stayed 8 bytes off
    // the grid cost the kernel four times as much.
    const start = 64 * MIB;
    const reads = plan(start - 8, start + 64 * MIB, start + 64 * MIB);
    assert.equal(reads[0]![0] + reads[0]![1], start + MIB - PAGE);
    for (const [at, length] of reads.slice(1)) {
      assert.equal(at % PAGE, 0, `read at ${at} is off the page grid`);
      assert.ok(length <= MIB);
    }
  });

  it('covers the range exactly, whatever its bounds, and never reads a chunk past its end', () => {
    for (const [start, end] of [
      [0, 65_537],
      [65_537 - 8, 131_074],
      [3, 10 * MIB + 5],
      [MIB - 8, 2 * MIB],
    ] as const) {
      const reads = plan(start, end, end);
      let at = start;
      for (const [from, length] of reads) {
        assert.equal(from, at);
        at += length;
      }
      assert.equal(at, end);
      const misaligned = reads.filter(([from, length]) => (from + length) % PAGE !== 0);
      // Only a read cut short by the range's end (or too short to reach a page boundary) is off the grid.
      assert.ok(misaligned.length <= 2, `${misaligned.length} reads end off the page grid`);
    }
  });

  it('reads past the end in small page-aligned steps, and never more than the buffer holds', () => {
    assert.equal(readLength(10 * MIB, 10 * MIB, MIB), 64 * 1024);
    assert.equal(readLength(10 * MIB + 100, 10 * MIB, MIB), 64 * 1024 - 100);
    assert.equal(readLength(0, 10 * MIB, 1000), 1000);
  });
});
