import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Report } from '../../src/analyze/report-schema.ts';
import { systemClock } from '../../src/clock.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { type CCore, makeCCore } from '../helpers/cores.ts';

/**
 * Issue 14: peak RSS of `nightshift analyze` at most 256 MiB for one dump and 512 MiB for 8 at
 * once, text-dense ones included: real cores whose heaps hold 300,000 distinct URLs each (fifteen
 * times the in-memory cap per kind, so every dump spills), one value planted in 5 of the 8.
 * bench/exact-counts.bench.ts runs the same at 1.1 M URLs a dump.
 */

const root = new URL('../../', import.meta.url).pathname;
const MIB = 1024 * 1024;
const PLANTED = 'http://radio.example.net/live/stream.mp3';
const NOISE = 300_000;

function analyze(paths: string[]): { report: Report; maxRssBytes: number } {
  const run = spawnSync(join(root, 'bin/nightshift'), ['analyze', '--json', '--stats', ...paths], {
    cwd: root,
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 256 * MIB,
  });
  assert.equal(run.status, 0, run.stderr);
  const stats = JSON.parse(run.stderr.trim().split('\n').at(-1)!).stats;
  return { report: JSON.parse(run.stdout), maxRssBytes: stats.maxRssBytes };
}

describe(`nightshift analyze on text-dense cores (${NOISE.toLocaleString('en')} distinct URLs each): memory`, () => {
  let dir: string;
  const cores: CCore[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-memory-'));
    const reversed = [...PLANTED].reverse().join('');
    const places = ['start', 'middle', 'end', 'none', 'middle', 'none', 'end', 'none'];
    for (const [d, place] of places.entries()) {
      cores.push(
        await makeCCore(join(dir, `core-${d}`), 'abort', {
          source: join(import.meta.dirname, '../helpers/url-heap.c'),
          args: [String(NOISE), String(d), place, reversed],
        }),
      );
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes at most 256 MiB for one dump', () => {
    const { report, maxRssBytes } = analyze([cores[2]!.path]);
    assert.equal(report.dumps[0]!.evidenceDropped, 0);
    assert.ok(report.dumps[0]!.urls.some((u) => u.value === PLANTED));
    console.log(`peak RSS, one dump: ${(maxRssBytes / MIB).toFixed(0)} MiB`);
    assert.ok(maxRssBytes <= 256 * MIB, `peak RSS ${(maxRssBytes / MIB).toFixed(0)} MiB`);
  });

  it('with no room to spill, loses values and says every count is a lower bound', async () => {
    const report = await analyzeFiles([cores[0]!.path, cores[1]!.path], {
      now: systemClock,
      workers: 0,
      spillBytes: 1,
    });
    assert.ok(report.dumps.every((d) => d.evidenceDropped > 0));
    assert.ok(report.correlations.length > 0);
    for (const c of report.correlations) {
      assert.equal(c.lowerBound, true);
      assert.match(c.why, /^in at least \d+ of 2 dumps \(a lower bound/);
    }
  });

  it('takes at most 512 MiB for eight at once, and finds the planted value in exactly 5', () => {
    const { report, maxRssBytes } = analyze(cores.map((c) => c.path));
    assert.equal(report.dumps.length, 8);
    const planted = report.correlations.find((c) => c.value === PLANTED)!;
    assert.equal(planted.dumps, 5);
    assert.equal(planted.lowerBound, false);
    console.log(`peak RSS, eight dumps: ${(maxRssBytes / MIB).toFixed(0)} MiB`);
    assert.ok(maxRssBytes <= 512 * MIB, `peak RSS ${(maxRssBytes / MIB).toFixed(0)} MiB`);
  });
});
