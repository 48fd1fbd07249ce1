import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ReportSchema } from '../../src/analyze/report-schema.ts';

const root = new URL('../../', import.meta.url).pathname;

function nightshift(...args: string[]) {
  const run = spawnSync(join(root, 'bin/nightshift'), args, { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('bin/nightshift analyze', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  it('analyses the shipped examples: the stream comes first, exit 0, no progress bar off a terminal', () => {
    const run = nightshift('analyze', 'examples/');
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.match(run.stdout, /^Nightshift: 5 dumps analysed/);
    assert.match(
      run.stdout,
      / 1\. \[url\] http:\/\/127\.0\.0\.1:\d+\/live\/radio\.mp3 {3}<< likely endless stream/,
    );
    assert.match(run.stdout, /in 3 of 5 dumps/);
    assert.match(run.stdout, /What to look at next/);
  });

  it('starts the examples with the headline, and dates them from inside the gzip and tar, not the checkout', () => {
    const lines = nightshift('analyze', 'examples/').stdout.split('\n');
    const headline = lines.findIndex((l) => l.startsWith('!! Likely endless stream in 3 of 5 dumps: '));
    const s1 = lines.findIndex((l) => l.startsWith('S1: 3 dumps of '));
    assert.ok(headline > 0 && headline < s1, `headline at line ${headline + 1}, S1 at ${s1 + 1}`);
    const seen = lines.filter((l) => l.startsWith('  seen'));
    assert.equal(seen.length, 3);
    for (const line of seen)
      assert.match(line, /^ {2}seen {6}2026-11-25 17:14Z \(from (gzip header|tar member)/);
    assert.ok(lines.some((l) => l.includes('GET /api/feeds/refresh?customer=4711') && /^\d\. Find /.test(l)));
  });

  it('prints a JSON document that satisfies the published schema', () => {
    const run = nightshift('analyze', '--json', 'examples/');
    assert.equal(run.status, 0, run.stderr);
    const printed = JSON.parse(run.stdout);
    const report = ReportSchema.parse(printed);
    // The CLI prints the report without parsing it (zod would cost the start-up a tenth of a
    // second): so nothing may be in it that the schema does not know, or parsing would drop it.
    assert.deepEqual(report, printed);
    assert.equal(report.dumps.length, 5);
    assert.deepEqual(report.dumps.map((d) => d.container).sort(), [
      'gzip',
      'gzip',
      'gzip',
      'gzip',
      'tar+gzip',
    ]);
  });

  it('lists files it could not read and still exits 0 when something was analysed', () => {
    writeFileSync(join(dir, 'notes.txt'), 'hello\n');
    const run = nightshift('analyze', 'examples/crash-abort.core.30457.gz', join(dir, 'notes.txt'));
    assert.equal(run.status, 0, run.stderr);
    assert.match(
      run.stdout,
      /Could not analyse\n {2}.*notes\.txt: not a core dump: a text file \[nightshift_not_core\]/,
    );
  });

  it('exits 1 when nothing could be analysed', () => {
    writeFileSync(join(dir, 'notes.txt'), 'hello\n');
    const run = nightshift('analyze', join(dir, 'notes.txt'), join(dir, 'missing.core'));
    assert.equal(run.status, 1);
    assert.match(run.stdout, /0 dumps analysed/);
    assert.match(run.stdout, /missing\.core: .*\[nightshift_unreadable_file\]/);
  });

  it('exits 2 with help on a usage error', () => {
    for (const args of [
      ['analyze'],
      ['analyze', '--workers', 'lots', 'examples/'],
      ['analyze', '--bogus'],
      ['frobnicate'],
      [],
    ]) {
      const run = nightshift(...args);
      assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stdout + run.stderr, /Usage: nightshift/);
    }
  });

  it('prints one stats line on stderr with --stats', () => {
    const run = nightshift('analyze', '--json', '--stats', '--workers', '2', 'examples/');
    assert.equal(run.status, 0, run.stderr);
    const stats = JSON.parse(run.stderr.trim().split('\n').at(-1)!).stats;
    assert.equal(stats.bytes, JSON.parse(run.stdout).totals.bytes);
    assert.ok(stats.elapsedMs > 0);
    assert.ok(stats.maxRssBytes > 10 << 20 && stats.maxRssBytes < 512 << 20, String(stats.maxRssBytes));
  });
});
