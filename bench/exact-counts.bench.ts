/**
 * Exact counts in bounded memory at scale (issue 14): BENCH_DUMPS (default 8) real kernel cores,
 * each holding BENCH_NOISE (default 1,100,000) distinct URLs, one URL planted in all but the last
 * two at the start, middle or end of the heap (test/helpers/url-heap.c). It runs `nightshift
 * analyze --json --stats` on one dump and on all of them, and beside it the shell pipeline an
 * engineer would type (`strings -n 8 | grep -oE URL | sort | uniq -c`), printing wall time, the
 * ratio, our peak RSS against its goal (256 MiB for one dump, 512 MiB for the set), and whether the
 * planted URL is reported in exactly the dumps that hold it, not as a lower bound; then the same
 * analysis as the bot's analysis job runs it (evidence/analyze-child.ts), with that process's peak.
 *
 * A measurement, not a test: a missed goal prints FAIL and exits 0; it exits 1 only when something
 * could not run. Cores take ~65 MiB each at the default size; they are deleted at the end.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeInChild } from '../src/evidence/analyze-child.ts';

const MIB = 1024 * 1024;
const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'test/helpers/url-heap.c');
const PLANTED = 'http://radio.example.net/live/stream.mp3';
const dumps = Number(process.env.BENCH_DUMPS ?? 8);
const noise = Number(process.env.BENCH_NOISE ?? 1_100_000);
const env = { ...process.env, PATH: `${join(root, 'node_modules/.bin')}:${process.env.PATH ?? ''}` };

function timed(command: string, args: string[]): { seconds: number; stdout: string; stderr: string } {
  const started = process.hrtime.bigint();
  const run = spawnSync(command, args, { cwd: root, env, encoding: 'utf8', maxBuffer: 1024 * MIB });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (run.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${run.status} ${run.stderr}`);
  return { seconds, stdout: run.stdout, stderr: run.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'nightshift-exact-bench-'));
let exitCode = 0;
try {
  const exe = join(dir, 'url-heap');
  timed('gcc', ['-O2', '-DCRASH_KIND="abort"', '-o', exe, source]);
  const reversed = [...PLANTED].reverse().join('');
  const places = ['start', 'middle', 'end'];
  const cores: string[] = [];
  const holders: string[] = [];
  for (let d = 0; d < dumps; d++) {
    const cwd = join(dir, `core-${d}`);
    mkdirSync(cwd);
    const place = d >= dumps - 2 ? 'none' : places[d % 3]!;
    spawnSync(
      'bash',
      ['-c', `ulimit -c unlimited; exec "$@"`, 'bash', exe, String(noise), String(d), place, reversed],
      {
        cwd,
      },
    );
    const name = readdirSync(cwd).find((f) => f.startsWith('core'));
    if (!name) throw new Error(`no core in ${cwd} (core_pattern must write cores into the cwd)`);
    const core = join(cwd, `${d}.core`);
    renameSync(join(cwd, name), core);
    cores.push(core);
    if (place !== 'none') holders.push(core);
  }
  const bytes = cores.reduce((s, c) => s + statSync(c).size, 0);
  console.log(
    `${dumps} cores, ${noise.toLocaleString('en')} distinct URLs each, ${(bytes / MIB).toFixed(0)} MiB`,
  );
  const pipeline =
    'for f in "$@"; do strings -n 8 "$f" | grep -oE \'https?://[][A-Za-z0-9._~:/?#@!$&()*+,;=%-]+\' | sort | uniq -c > /dev/null; done';
  for (const [label, set, goal] of [
    ['one dump', cores.slice(0, 1), 256],
    [`${dumps} dumps`, cores, 512],
  ] as const) {
    const theirs = timed('bash', ['-c', pipeline, 'bench', ...set]);
    const ours = timed(join(root, 'bin/nightshift'), ['analyze', '--json', '--stats', ...set]);
    const rss = JSON.parse(ours.stderr.trim().split('\n').at(-1)!).stats.maxRssBytes / MIB;
    const report = JSON.parse(ours.stdout);
    const planted = report.correlations.find((c: { value: string }) => c.value === PLANTED);
    const expected = holders.filter((h) => set.includes(h));
    const exact =
      planted !== undefined &&
      planted.dumps === expected.length &&
      planted.lowerBound === false &&
      JSON.stringify([...planted.files].sort()) === JSON.stringify([...expected].sort());
    console.log(
      `${label}: ours ${ours.seconds.toFixed(1)} s, strings -n 8 | grep | sort | uniq -c ${theirs.seconds.toFixed(1)} s ` +
        `(ours/theirs ${(ours.seconds / theirs.seconds).toFixed(2)}x); peak RSS ${rss.toFixed(0)} MiB`,
    );
    console.log(`  ${rss <= goal ? 'PASS' : 'FAIL'}  peak RSS <= ${goal} MiB`);
    console.log(
      `  ${exact ? 'PASS' : 'FAIL'}  planted URL in exactly ${expected.length} of ${set.length}` +
        ` (reported: ${planted ? `${planted.dumps}${planted.lowerBound ? ', lower bound' : ''}` : 'not at all'})`,
    );
    // The bot's analysis job runs the same analysis in a process of its own: its peak RSS there.
    const started = performance.now();
    const job = await analyzeInChild(set);
    const jobRss = job.peakRssBytes / MIB;
    console.log(
      `  the bot's analysis job (its own process): ${((performance.now() - started) / 1000).toFixed(1)} s, peak RSS ${jobRss.toFixed(0)} MiB`,
    );
    console.log(`  ${jobRss <= goal ? 'PASS' : 'FAIL'}  the job's peak RSS <= ${goal} MiB`);
  }
} catch (error) {
  console.error(`bench: ${(error as Error).message}`);
  exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = exitCode;
