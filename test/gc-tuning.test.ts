import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';

/**
 * A process streaming gigabytes through short-lived Buffers (a pull, an analysis) with a heap of
 * its own to keep: V8's full collections, counted, with and without countExternalMemoryInHeapLimits.
 */
const script = `
import { PerformanceObserver, constants } from 'node:perf_hooks';
if (process.argv[1] === 'tuned')
  (await import(${JSON.stringify(new URL('../src/gc-tuning.ts', import.meta.url).href)})).countExternalMemoryInHeapLimits();
const kept = [];
for (let i = 0; i < 200_000; i++) kept.push({ i, text: 'value ' + i, list: [i] });
let majors = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
}).observe({ entryTypes: ['gc'] });
// 2 GiB through 256 KiB Buffers, each dropped at once, as zstd's output and SSH packets are.
let sum = 0;
for (let i = 0; i < 8192; i++) {
  const b = Buffer.allocUnsafe(256 * 1024);
  b[0] = i & 255;
  sum += b[0];
  if (i % 64 === 0) await new Promise((r) => setImmediate(r));
}
await new Promise((r) => setTimeout(r, 50));
console.log(JSON.stringify({ majors, kept: kept.length, sum }));
`;

const majors = (mode: string): number =>
  JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', script, mode], { encoding: 'utf8' }),
  ).majors;

describe('counting Buffers in the heap limits', () => {
  it('turns a full collection every few dozen MiB streamed into a handful', () => {
    const plain = majors('plain');
    const tuned = majors('tuned');
    assert.ok(plain >= 10, `without it, ${plain} full collections`);
    assert.ok(tuned * 4 <= plain, `with it, ${tuned} full collections (without: ${plain})`);
  });
});
