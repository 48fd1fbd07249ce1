import assert from 'node:assert/strict';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { createGzip } from 'node:zlib';
import { buildReport, type DumpRecord } from '../../src/analyze/correlate.ts';
import {
  EvidenceCollector,
  type EvidenceSnapshot,
  MAX_DISTINCT_PER_KIND,
} from '../../src/analyze/evidence.ts';
import { type Report, ReportSchema } from '../../src/analyze/report-schema.ts';
import { systemClock } from '../../src/clock.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { MAX_PROMOTED, resolveOverflow } from '../../src/evidence/overflow.ts';
import { newSpillConfig, SpillStore } from '../../src/evidence/spill.ts';
import { type CCore, makeCCore } from '../helpers/cores.ts';
import { grepCount } from '../helpers/reference-tools.ts';

/**
 * Issue 14: a value in k of N dumps is reported in k, whatever the number of other distinct values
 * and wherever it lies in memory. The old collector kept the first 50,000 distinct values per kind
 * and dropped the rest, so the value that decided the incident could be lost for where it lay.
 */

const PLANTED = 'http://radio.example.net/live/stream.mp3';
const NOISE = 1_000_000;
/** Where the planted value is in each dump (allocation order); the fourth has none. */
const PLACES = ['start', 'middle', 'end', 'none'] as const;

function record(i: number, evidence: EvidenceSnapshot): DumpRecord {
  return {
    file: `core.${i}`,
    entry: null,
    container: 'raw',
    fileBytes: 1,
    sizeBytes: 1,
    mtime: new Date(Date.UTC(2026, 11, 3, 3, i)),
    facts: {
      arch: 'x86_64',
      pid: 100 + i,
      ppid: 1,
      uid: 0,
      gid: 0,
      processName: 'app',
      argv: null,
      commandLine: null,
      commandLineSource: null,
      psargs: null,
      executable: '/usr/bin/app',
      execfn: null,
      libraries: [],
      signal: null,
      threads: 1,
      threadList: [],
      truncated: false,
      expectedBytes: 1,
      environment: [],
      redactions: 0,
      secrets: [],
    } as unknown as DumpRecord['facts'],
    evidence,
  };
}

describe('EvidenceCollector with a spill, merged by resolveOverflow', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-spill-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('counts a value planted among 200,000 distinct ones, at the start, middle and end, in 3 of 4 dumps', async () => {
    const noise = 200_000;
    const config = newSpillConfig(dir, 2 ** 40);
    const snapshots = PLACES.map((place, d) => {
      const collector = new EvidenceCollector({ spill: new SpillStore(config) });
      const at = place === 'start' ? 0 : place === 'middle' ? noise / 2 : place === 'end' ? noise : -1;
      for (let i = 0; i <= noise; i++) {
        if (i === at) collector.add({ kind: 'url', value: PLANTED, count: 1, encoding: 'ascii' });
        if (i < noise)
          collector.add({ kind: 'url', value: `http://noise${d}.test/${i}`, count: 1, encoding: 'ascii' });
      }
      // A value kept in memory early and seen again past the cap: one count, not two.
      collector.add({ kind: 'url', value: `http://noise${d}.test/0`, count: 2, encoding: 'ascii' });
      return collector.snapshot();
    });
    for (const s of snapshots) {
      assert.equal(s.dropped, 0);
      assert.ok(s.runs.length > 0, 'past the cap, values are spilled');
      assert.ok(s.items.length <= MAX_DISTINCT_PER_KIND);
    }
    await resolveOverflow(snapshots, config);
    assert.deepEqual(readdirSync(dir), [], 'the runs are deleted once read');
    const report = buildReport(
      snapshots.map((s, i) => record(i, s)),
      [],
      new Date(0),
    );
    const planted = report.correlations.find((c) => c.value === PLANTED)!;
    assert.equal(planted.dumps, 3);
    assert.equal(planted.occurrences, 3);
    assert.deepEqual(planted.files, ['core.0', 'core.1', 'core.2']);
    assert.equal(planted.lowerBound, false);
    assert.match(planted.why, /^in 3 of 4 dumps;/);
    for (const [d, s] of snapshots.entries())
      assert.equal(s.items.find((i) => i.value === `http://noise${d}.test/0`)?.count, 3);
  });

  it('lists at most MAX_PROMOTED of the values only spilled somewhere, and marks the others a lower bound where kept', async () => {
    const config = newSpillConfig(dir, 2 ** 40);
    const shared = MAX_PROMOTED + 5_000;
    const request = (i: number) => ({
      kind: 'request' as const,
      value: `GET /s/${String(i).padStart(6, '0')}`,
      count: 1,
      encoding: 'ascii' as const,
    });
    // Every shared value is in both dumps with the same count, so the cut goes by key: the first
    // MAX_PROMOTED make it. Dump 0 keeps filler first, so it spills them all; dump 1 takes them
    // last key first, so the ones it keeps (its first MAX_DISTINCT_PER_KIND) are ones cut.
    const spills = new EvidenceCollector({ spill: new SpillStore(config) });
    for (let i = 0; i < MAX_DISTINCT_PER_KIND; i++) spills.add({ ...request(i), value: `GET /filler/${i}` });
    for (let i = 0; i < shared; i++) spills.add(request(i));
    const keeps = new EvidenceCollector({ spill: new SpillStore(config) });
    for (let i = shared - 1; i >= 0; i--) keeps.add(request(i));
    const snapshots = [spills.snapshot(), keeps.snapshot()];
    await resolveOverflow(snapshots, config);
    const listed = snapshots[0]!.items.filter((i) => i.value.startsWith('GET /s/'));
    assert.equal(listed.length, MAX_PROMOTED);
    assert.deepEqual(
      listed.map((i) => i.value).sort(),
      Array.from({ length: MAX_PROMOTED }, (_, i) => request(i).value),
    );
    assert.equal(
      snapshots[1]!.unlistedElsewhere.length,
      Math.min(MAX_DISTINCT_PER_KIND, shared - MAX_PROMOTED),
    );
    const report = buildReport(
      snapshots.map((s, i) => record(i, s)),
      [],
      new Date(0),
    );
    // The ranked correlations are the listed ones, in both dumps, exact.
    const top = report.correlations.filter((c) => c.value.startsWith('GET /s/'));
    assert.ok(top.length > 0);
    for (const c of top) assert.deepEqual([c.dumps, c.lowerBound], [2, false], c.value);
    // One that was not listed in dump 0 is, in dump 1's correlation, a lower bound.
    const key = snapshots[1]!.unlistedElsewhere[0]!;
    const value = key.slice(key.indexOf('\u0000') + 1);
    const alone = buildReport(
      [record(0, { ...snapshots[1]!, items: snapshots[1]!.items.filter((i) => i.value === value) })],
      [],
      new Date(0),
    ).correlations[0]!;
    assert.equal(alone.value, value);
    assert.equal(alone.lowerBound, true);
    assert.match(alone.why, /^in at least 1 of 1 dump \(a lower bound/);
  });

  it('without a spill, drops what is past the cap and marks every correlation a lower bound', () => {
    const snapshots = [0, 1].map(() => {
      const collector = new EvidenceCollector();
      for (let i = 0; i < MAX_DISTINCT_PER_KIND + 5; i++)
        collector.add({ kind: 'url', value: `http://a.test/${i}`, count: 1, encoding: 'ascii' });
      return collector.snapshot();
    });
    assert.equal(snapshots[0]!.dropped, 5);
    const report = buildReport(
      snapshots.map((s, i) => record(i, s)),
      [],
      new Date(0),
    );
    assert.ok(report.correlations.length > 0);
    for (const c of report.correlations) {
      assert.equal(c.lowerBound, true);
      assert.match(c.why, /^in at least 2 of 2 dumps \(a lower bound/);
    }
  });
});

describe(`real cores: ${NOISE.toLocaleString('en')} distinct URLs each, one planted in 3 of 4 at the start, middle and end of the heap (one gzipped)`, () => {
  let dir: string;
  let spillDir: string;
  let cores: CCore[];
  let report: Report;
  let gzipped: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-exact-'));
    spillDir = join(dir, 'spill');
    const reversed = [...PLANTED].reverse().join('');
    cores = [];
    // One at a time: each process holds ~60 MiB, and the machine is shared.
    for (const [d, place] of PLACES.entries()) {
      cores.push(
        await makeCCore(join(dir, `core-${d}`), 'abort', {
          source: join(import.meta.dirname, '../helpers/url-heap.c'),
          args: [String(NOISE), String(d), place, reversed],
        }),
      );
    }
    mkdirSync(spillDir);
    // The third as a gzip, so the streaming reader's collector spills too.
    gzipped = join(dir, 'core-2.gz');
    await pipeline(createReadStream(cores[2]!.path), createGzip({ level: 1 }), createWriteStream(gzipped));
    report = await analyzeFiles(
      cores.map((c, i) => (i === 2 ? gzipped : c.path)),
      { now: systemClock, workers: 2, rangeBytes: 8 * 1024 * 1024, spillDir },
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('grep finds the planted value once in each of the three, and nowhere in the fourth', async () => {
    assert.deepEqual(await Promise.all(cores.map((c) => grepCount(c.path, PLANTED))), [1, 1, 1, 0]);
  });

  it('reports it in exactly 3 of 4 dumps, once in each, not as a lower bound', () => {
    ReportSchema.parse(report);
    assert.deepEqual(report.errors, []);
    const planted = report.correlations.find((c) => c.value === PLANTED);
    assert.ok(planted, 'the planted value is reported');
    assert.equal(planted.dumps, 3);
    assert.equal(planted.total, 4);
    assert.equal(planted.occurrences, 3);
    assert.deepEqual(planted.files, [cores[0]!.path, cores[1]!.path, gzipped]);
    assert.equal(planted.lowerBound, false);
    assert.equal(report.correlations[0]!.value, PLANTED);
    assert.match(report.findings[0]!.title, /^Likely endless stream in 3 of 4 dumps/);
    for (const d of report.dumps) {
      assert.equal(d.evidenceDropped, 0);
      assert.ok(d.stringsScanned > NOISE);
    }
  });

  it('leaves nothing in the spill directory', () => {
    assert.deepEqual(readdirSync(spillDir), []);
  });
});
