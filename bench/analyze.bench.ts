/**
 * Throughput and memory benchmark for `nightshift analyze` on a large core dump.
 *
 * Why this shape: the analyzer's job is "which strings fill this dump", and the obvious thing an
 * on-call engineer would type instead is `grep -ao … | sort | uniq -c`. So the bench makes a real
 * kernel core of about BENCH_CORE_MIB MiB (random heap plus planted URLs, see fill-heap.c), then times
 *   1. `cat` to /dev/null: the I/O floor, nothing can beat it;
 *   2. the grep pipeline: the reference the analyzer has to beat;
 *   3. the analyzer itself, whose `--stats` line gives its peak RSS (workers included);
 * each once untimed and then RUNS times in turn (see timeInterleaved), and checks that the
 * analyzer's URL counts agree with grep's, so speed is never bought with wrong answers.
 *
 * It is a measurement, not a test: missed goals print FAIL but exit 0. It exits non-zero only when
 * something could not run (no compiler, no core, analyzer missing or crashing, unreadable output).
 *
 * Then the cores the analyzer is for: BENCH_TEXT_DUMPS (default 8) real Python processes whose
 * heaps are dense with text (bench/text-heap.py: JSON records, HTML, log lines, SQL, headers and
 * millions of distinct values, BENCH_TEXT_MIB each, default 256), killed with SIGABRT so the kernel
 * writes their cores, one URL planted in all but a quarter of them (six of eight) at the start, middle or end of the
 * heap. It times, in turn, `cat`, `strings -n 8` alone (the goal: ours no slower), the pipeline an
 * engineer would type (`strings -n 8 | grep -oE URL | sort | uniq -c`, per dump) and ours on all of
 * them and on one, and checks that the planted URL is reported in exactly the dumps that hold it.
 *
 * Env: BENCH_CORE_MIB (default 1024; use e.g. 64 for a quick smoke run), BENCH_RUNS (default 5)
 * rounds on it; BENCH_TEXT_DUMPS (0 leaves the text set out), BENCH_TEXT_SHAPE (web, the default;
 * long: values of hundreds of characters; feed: whole RSS documents, as a feed fetcher holds; see
 * text-heap.py), BENCH_TEXT_MIB, BENCH_TEXT_RUNS (default 1); BENCH_KEEP=1 keeps the temp dir
 * with the cores.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Generous: a slow analyzer should show up as a slow number, but a hung one must not hang CI. */
const RUN_TIMEOUT_MS = 15 * 60 * 1000;
const RSS_GOAL_BYTES = 256 * 1024 * 1024;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const CORE_PATTERN = '/proc/sys/kernel/core_pattern';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const fillHeapSource = fileURLToPath(new URL('./fill-heap.c', import.meta.url));
const textHeapSource = fileURLToPath(new URL('./text-heap.py', import.meta.url));
const PLANTED = 'http://radio.example.net/live/stream.mp3';
const RSS_SET_GOAL_BYTES = 512 * 1024 * 1024;
const nightshiftBin = join(repoRoot, 'bin', 'nightshift');

/**
 * Children get the project's node_modules/.bin first on PATH, as under `npm run bench`, so a
 * `#!/usr/bin/env node` shebang finds the project's Node 24 even when the bench is started
 * directly (the system node is older).
 */
const childEnv = {
  ...process.env,
  PATH: `${join(repoRoot, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
};

/** Children still running, so an interrupted bench can kill them before deleting their directory. */
const liveChildren = new Set<ChildProcess>();

/** Something could not run: reported, then the bench exits non-zero. */
class BenchError extends Error {}

interface RunResult {
  seconds: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  error?: Error;
}

interface RunOptions {
  cwd: string;
  captureStdout?: boolean;
  timeoutMs?: number;
  /** Called with the live child, for callers that must talk to it before it exits. */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs one command and times it wall-clock, from spawn to the child's streams closing. */
function run(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const started = process.hrtime.bigint();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: childEnv,
      stdio: ['ignore', options.captureStdout ? 'pipe' : 'ignore', 'pipe'],
      timeout: options.timeoutMs ?? RUN_TIMEOUT_MS,
    });
    liveChildren.add(child);
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    let spawnError: Error | undefined;
    child.on('error', (error) => {
      spawnError = error;
    });
    options.onSpawn?.(child);
    child.on('close', (code, signal) => {
      liveChildren.delete(child);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const result: RunResult = {
        seconds,
        code,
        signal,
        stdout: Buffer.concat(stdout),
        stderr: Buffer.concat(stderr),
      };
      if (spawnError) result.error = spawnError;
      resolve(result);
    });
  });
}

function describeFailure(what: string, result: RunResult): string {
  if (result.error) return `${what}: ${result.error.message}`;
  const how = result.signal ? `killed by ${result.signal}` : `exit code ${result.code}`;
  const stderr = result.stderr.toString('utf8').trim().split('\n').slice(-15).join('\n');
  return `${what} failed (${how})${stderr ? `:\n${stderr}` : ''}`;
}

function positiveIntegerEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) === 0) {
    throw new BenchError(`${name} must be a positive integer, got '${raw}'`);
  }
  return Number(raw);
}

/** `planted <count> <url>` lines from fill-heap: the ground truth. */
function parsePlanted(stdout: Buffer): Map<string, number> {
  const planted = new Map<string, number>();
  for (const line of stdout.toString('latin1').split('\n')) {
    const match = /^planted (\d+) (.+)$/.exec(line);
    if (match) planted.set(match[2]!, Number(match[1]));
  }
  return planted;
}

function findCore(dir: string): string | undefined {
  const name = readdirSync(dir).find((entry) => /^core(\.\d+)?$/.test(entry));
  return name === undefined ? undefined : join(dir, name);
}

interface Core {
  path: string;
  bytes: number;
  seconds: number;
  how: string;
  planted: Map<string, number>;
}

/**
 * Makes the core the way production gets them: the kernel dumps an aborting process. If the
 * kernel writes none here (core_pattern piped to systemd-coredump or apport, hard limit 0), gdb's
 * gcore dumps the same process, paused instead of aborted.
 */
async function makeCore(dir: string, mib: number): Promise<Core> {
  const needed = mib * MIB + 64 * MIB;
  const fs = statfsSync(dir);
  if (fs.bavail * fs.bsize < needed) {
    throw new BenchError(
      `not enough space in ${dir} for a ${mib} MiB core (${fmtMiB(fs.bavail * fs.bsize)} free)`,
    );
  }

  // -z now: see the build note in fill-heap.c (lazy binding would leak a stray URL fragment).
  const gcc = await run('gcc', ['-O2', '-Wl,-z,now', '-o', 'fill-heap', fillHeapSource], { cwd: dir });
  if (gcc.error || gcc.code !== 0) {
    throw new BenchError(describeFailure('compiling fill-heap.c with gcc', gcc));
  }

  const started = process.hrtime.bigint();
  const kernel = await run('bash', ['-c', `ulimit -c unlimited; exec ./fill-heap ${mib}`], {
    cwd: dir,
    captureStdout: true,
  });
  if (kernel.error) throw new BenchError(describeFailure('running fill-heap', kernel));
  if (kernel.signal !== 'SIGABRT') {
    throw new BenchError(describeFailure('fill-heap did not abort; it', kernel));
  }
  const kernelCore = findCore(dir);
  if (kernelCore) {
    return {
      path: kernelCore,
      bytes: statSync(kernelCore).size,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      how: 'the kernel',
      planted: parsePlanted(kernel.stdout),
    };
  }

  const pattern = existsSync(CORE_PATTERN) ? readFileSync(CORE_PATTERN, 'utf8').trim() : 'unknown';
  console.log(`no core from the kernel (core_pattern '${pattern}'); falling back to gcore`);

  const gcoreStarted = process.hrtime.bigint();
  let stdoutSoFar = '';
  let child: ChildProcess | undefined;
  const ready = new Promise<number>((resolve, reject) => {
    const waiting = run('./fill-heap', ['--wait', String(mib)], {
      cwd: dir,
      onSpawn: (c) => {
        child = c;
        c.stdout?.on('data', (chunk: Buffer) => {
          stdoutSoFar += chunk.toString('latin1');
          const match = /^ready (\d+)$/m.exec(stdoutSoFar);
          if (match) resolve(Number(match[1]));
        });
      },
      captureStdout: true,
    });
    waiting.then((result) =>
      reject(new BenchError(describeFailure('fill-heap --wait exited early', result))),
    );
  });
  try {
    const pid = await ready;
    const gcore = await run('gcore', ['-o', join(dir, 'core'), String(pid)], { cwd: dir });
    if (gcore.error || gcore.code !== 0) {
      throw new BenchError(
        `neither the kernel nor gcore produced a core.\n${describeFailure('gcore', gcore)}\n` +
          'Check `ulimit -Hc`, /proc/sys/kernel/core_pattern, and that gdb is installed.',
      );
    }
  } finally {
    child?.kill('SIGKILL');
  }
  const gcoreCore = findCore(dir);
  if (!gcoreCore) throw new BenchError('gcore reported success but wrote no core file');
  return {
    path: gcoreCore,
    bytes: statSync(gcoreCore).size,
    seconds: Number(process.hrtime.bigint() - gcoreStarted) / 1e9,
    how: 'gcore',
    planted: parsePlanted(Buffer.from(stdoutSoFar, 'latin1')),
  };
}

interface Timed {
  name: string;
  runs: number[];
  median: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Contender {
  name: string;
  command: string;
  args: readonly string[];
  options: RunOptions;
  results: RunResult[];
  /** Why it stopped: after a failure its timings would mean nothing. */
  failure?: string;
}

/**
 * Runs every contender once untimed (the page cache and Node's compile cache are then warm for all
 * of them alike), then RUNS rounds of each in turn, so a slow spell of this shared machine falls on
 * all of them rather than on whichever happened to run then.
 */
async function timeInterleaved(contenders: readonly Contender[], runs: number): Promise<void> {
  for (let round = -1; round < runs; round++) {
    for (const c of contenders) {
      if (c.failure !== undefined) continue;
      const result = await run(c.command, c.args, c.options);
      if (result.error || result.code !== 0) c.failure = describeFailure(c.name, result);
      else if (round >= 0) c.results.push(result);
    }
  }
}

function timed(c: Contender): Timed {
  const runs = c.results.map((r) => r.seconds);
  return { name: c.name, runs, median: median(runs) };
}

/**
 * `uniq -c` output to value → count. Read as latin1 so each byte is one char: grep's wider class
 * lets arbitrary bytes into matches, and they must not be merged by UTF-8 decoding.
 */
function parseUniqCounts(stdout: Buffer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of stdout.toString('latin1').split('\n')) {
    const match = /^ *(\d+) (.*)$/s.exec(line);
    if (match) counts.set(match[2]!, (counts.get(match[2]!) ?? 0) + Number(match[1]));
  }
  return counts;
}

interface Stats {
  bytes?: number;
  elapsedMs?: number;
  maxRssBytes?: number;
}

/** The last `{"stats"…}` line on stderr; a missing or odd line means "unknown", never a crash. */
function parseStats(stderr: Buffer): Stats | undefined {
  const lines = stderr
    .toString('utf8')
    .split('\n')
    .filter((line) => line.startsWith('{"stats"'));
  const last = lines.at(-1);
  if (last === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(last);
    const stats = (parsed as { stats?: unknown }).stats;
    if (typeof stats !== 'object' || stats === null) return undefined;
    const out: Stats = {};
    for (const key of ['bytes', 'elapsedMs', 'maxRssBytes'] as const) {
      const value = (stats as Record<string, unknown>)[key];
      if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
    }
    return out;
  } catch {
    return undefined;
  }
}

/** `dumps[0].urls[]` from the analyzer's JSON report, with values in the same latin1 form as grep's. */
function parseOurUrls(stdout: Buffer): Map<string, number> {
  let report: unknown;
  try {
    report = JSON.parse(stdout.toString('utf8'));
  } catch (error) {
    const reason = (error as Error).message.split('\n')[0];
    const head = JSON.stringify(stdout.toString('utf8').slice(0, 120));
    throw new BenchError(`analyzer stdout is not JSON (${reason}); it starts ${head}`);
  }
  const urls = (report as { dumps?: { urls?: unknown }[] } | null)?.dumps?.[0]?.urls;
  if (!Array.isArray(urls)) throw new BenchError('analyzer JSON has no dumps[0].urls array');
  const counts = new Map<string, number>();
  for (const entry of urls) {
    const { value, count } = (entry ?? {}) as { value?: unknown; count?: unknown };
    if (typeof value !== 'string' || typeof count !== 'number') {
      throw new BenchError(`analyzer JSON has a malformed url entry: ${JSON.stringify(entry)}`);
    }
    counts.set(Buffer.from(value, 'utf8').toString('latin1'), count);
  }
  return counts;
}

/** Checks `actual` on the keys of `expected`; returns human-readable differences. */
function diffCounts(
  expected: Map<string, number>,
  actual: Map<string, number>,
  expectedName: string,
  actualName: string,
): string[] {
  const diffs: string[] = [];
  for (const [value, count] of expected) {
    const other = actual.get(value) ?? 0;
    if (other !== count)
      diffs.push(`  ${expectedName} ${count}, ${actualName} ${other}: ${JSON.stringify(value)}`);
  }
  return diffs;
}

function fmtMiB(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

function printTable(
  rows: Timed[],
  coreBytes: number,
  grepMedian: number,
  rssByName: Map<string, string>,
): void {
  const header = ['', 'median s', 'MB/s', 'GiB/s', 'grep/this', 'peak RSS', `runs (s)`];
  const body = rows.map((row) => [
    row.name,
    row.median.toFixed(3),
    (coreBytes / 1e6 / row.median).toFixed(0),
    (coreBytes / GIB / row.median).toFixed(2),
    `${(grepMedian / row.median).toFixed(2)}x`,
    rssByName.get(row.name) ?? '-',
    row.runs.map((s) => s.toFixed(3)).join(' '),
  ]);
  const table = [header, ...body];
  const widths = header.map((_, col) => Math.max(...table.map((r) => r[col]!.length)));
  for (const r of table) {
    console.log(
      r.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  '),
    );
  }
}

/** Rounds on the random core, and the text-dense set's size: from the environment, in main. */
let RUNS = 5;
let textDumps = 8;
let textMib = 256;
let textRuns = 1;
let textShape = 'web';

/** One Python core: its path, and whether the planted URL is in it. */
interface TextCore {
  path: string;
  holds: boolean;
}

/** A Python process fills its heap with text (text-heap.py) and aborts; the kernel writes its core. */
async function makeTextCore(dir: string, index: number, place: string): Promise<TextCore> {
  const cwd = join(dir, `text-${index}`);
  mkdirSync(cwd);
  const reversed = [...PLANTED].reverse().join('');
  const python = await run(
    'bash',
    [
      '-c',
      'ulimit -c unlimited; exec python3 "$@"',
      'bench',
      textHeapSource,
      String(textMib),
      String(index),
      place,
      reversed,
      textShape,
    ],
    { cwd },
  );
  if (python.error) throw new BenchError(describeFailure('running python3 text-heap.py', python));
  if (python.signal !== 'SIGABRT')
    throw new BenchError(describeFailure('text-heap.py did not abort; it', python));
  const core = findCore(cwd);
  if (!core) {
    const pattern = existsSync(CORE_PATTERN) ? readFileSync(CORE_PATTERN, 'utf8').trim() : 'unknown';
    throw new BenchError(
      `python3 aborted but the kernel wrote no core in ${cwd} (core_pattern '${pattern}')`,
    );
  }
  const path = join(dir, `python-${index}.core`);
  renameSync(core, path);
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { path, holds: place !== 'none' };
}

interface Correlation {
  value: string;
  dumps: number;
  lowerBound: boolean;
  files: string[];
}

/** Whether the report names the planted URL in exactly the dumps that hold it, and what it says. */
function plantedVerdict(stdout: Buffer, cores: readonly TextCore[]): { exact: boolean; said: string } {
  const report = JSON.parse(stdout.toString('utf8')) as { correlations?: Correlation[] };
  const found = report.correlations?.find((c) => c.value === PLANTED);
  const expected = cores
    .filter((c) => c.holds)
    .map((c) => c.path)
    .sort();
  if (!found) return { exact: expected.length === 0, said: 'not reported' };
  const exact =
    found.dumps === expected.length &&
    !found.lowerBound &&
    JSON.stringify([...found.files].sort()) === JSON.stringify(expected);
  return { exact, said: `in ${found.dumps} of ${cores.length}${found.lowerBound ? ' (lower bound)' : ''}` };
}

/**
 * The text-dense set: what the analyzer meets on a real incident. Timed like the random core
 * (each once untimed, then BENCH_TEXT_RUNS rounds in turn), side by side with `strings -n 8`.
 */
async function benchTextSet(dir: string): Promise<void> {
  const needed = textDumps * (textMib + 128) * MIB;
  const fs = statfsSync(dir);
  if (fs.bavail * fs.bsize < needed)
    throw new BenchError(`not enough space in ${dir} for the text-dense cores`);
  console.log(
    `making ${textDumps} Python cores, each a ${textMib} MiB heap of text (${textShape} values) ...`,
  );
  const started = process.hrtime.bigint();
  const places = ['start', 'middle', 'end'];
  const cores: TextCore[] = [];
  for (let d = 0; d < textDumps; d++) {
    // All but the last quarter hold the planted URL (six of eight), at the start, middle or end.
    const place = d >= textDumps - Math.floor(textDumps / 4) ? 'none' : places[d % 3]!;
    cores.push(await makeTextCore(dir, d, place));
  }
  const bytes = cores.reduce((sum, c) => sum + statSync(c.path).size, 0);
  console.log(
    `${textDumps} cores, ${fmtMiB(bytes)} in all, made by the kernel in ` +
      `${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s; ${PLANTED} in ` +
      `${cores.filter((c) => c.holds).length} of them`,
  );
  const paths = cores.map((c) => c.path);
  const url = "'https?://[][A-Za-z0-9._~:/?#@!$&()*+,;=%-]+'";
  const shell = (name: string, script: string, set: readonly string[]): Contender => ({
    name,
    command: 'bash',
    args: ['-c', script, 'bench', ...set],
    options: { cwd: dir },
    results: [],
  });
  const ours = (name: string, set: readonly string[]): Contender => ({
    name,
    command: nightshiftBin,
    args: ['analyze', '--json', '--stats', ...set],
    options: { cwd: repoRoot, captureStdout: true },
    results: [],
  });
  const contenders = [
    shell('cat > /dev/null', 'cat "$@" > /dev/null', paths),
    shell('strings -n 8 > /dev/null', 'strings -n 8 "$@" > /dev/null', paths),
    shell(
      'strings -n 8 | grep -oE URL | sort | uniq -c',
      `for f in "$@"; do strings -n 8 "$f" | LC_ALL=C grep -oE ${url} | LC_ALL=C sort | uniq -c > /dev/null; done`,
      paths,
    ),
    ours(`nightshift analyze (${textDumps} dumps)`, paths),
    ours('nightshift analyze (one dump)', paths.slice(0, 1)),
  ];
  await timeInterleaved(contenders, textRuns);
  for (const c of contenders) if (c.failure !== undefined) throw new BenchError(c.failure);
  const [, strings, , all, one] = contenders as [Contender, Contender, Contender, Contender, Contender];
  const stringsMedian = timed(strings).median;
  const rss = new Map<string, string>();
  const peak = new Map<Contender, number | undefined>();
  for (const c of [all, one]) {
    const values = c.results.map((r) => parseStats(r.stderr)?.maxRssBytes);
    const worst = values.every((v) => v !== undefined) ? Math.max(...(values as number[])) : undefined;
    peak.set(c, worst);
    rss.set(c.name, worst === undefined ? 'unknown' : fmtMiB(worst));
  }
  const header = ['', 'median s', 'MB/s', 'strings/this', 'peak RSS', 'runs (s)'];
  const body = contenders.map((c) => {
    const t = timed(c);
    const set = c === one ? statSync(paths[0]!).size : bytes;
    // Against strings -n 8 over the same bytes: for one dump, its share of the set's time.
    const reference = c === one ? (stringsMedian * set) / bytes : stringsMedian;
    return [
      c.name,
      t.median.toFixed(2),
      (set / 1e6 / t.median).toFixed(0),
      `${(reference / t.median).toFixed(2)}x`,
      rss.get(c.name) ?? '-',
      t.runs.map((s) => s.toFixed(2)).join(' '),
    ];
  });
  const table = [header, ...body];
  const widths = header.map((_, col) => Math.max(...table.map((r) => r[col]!.length)));
  console.log('');
  for (const r of table) {
    console.log(
      r.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  '),
    );
  }
  console.log('');
  const allVerdict = plantedVerdict(all.results.at(-1)!.stdout, cores);
  const oneVerdict = plantedVerdict(one.results.at(-1)!.stdout, cores.slice(0, 1));
  const pass = (ok: boolean | undefined) => (ok === undefined ? 'UNKNOWN' : ok ? 'PASS' : 'FAIL');
  const allPeak = peak.get(all);
  const onePeak = peak.get(one);
  const holders = cores.filter((c) => c.holds).length;
  console.log(
    `${pass(timed(all).median <= stringsMedian)}  ${textDumps} text-dense dumps no slower than strings -n 8 ` +
      `(${timed(all).median.toFixed(2)} s vs ${stringsMedian.toFixed(2)} s)`,
  );
  console.log(
    `${pass(allPeak === undefined ? undefined : allPeak <= RSS_SET_GOAL_BYTES)}  peak RSS <= 512 MiB for ` +
      `${textDumps} dumps (${rss.get(all.name)})`,
  );
  console.log(
    `${pass(onePeak === undefined ? undefined : onePeak <= RSS_GOAL_BYTES)}  peak RSS <= 256 MiB for one dump ` +
      `(${rss.get(one.name)})`,
  );
  console.log(
    `${pass(allVerdict.exact)}  planted URL in exactly ${holders} of ${textDumps}, not a lower bound ` +
      `(reported: ${allVerdict.said})`,
  );
  console.log(`${pass(oneVerdict.exact)}  planted URL in the one dump alone (reported: ${oneVerdict.said})`);
}

async function main(): Promise<number> {
  let mib: number;
  try {
    mib = positiveIntegerEnv('BENCH_CORE_MIB', 1024);
    RUNS = positiveIntegerEnv('BENCH_RUNS', 5);
    textDumps = Number(process.env.BENCH_TEXT_DUMPS ?? 8);
    if (!Number.isInteger(textDumps) || textDumps < 0)
      throw new BenchError('BENCH_TEXT_DUMPS must be 0 or more');
    textMib = positiveIntegerEnv('BENCH_TEXT_MIB', 256);
    textRuns = positiveIntegerEnv('BENCH_TEXT_RUNS', 1);
    textShape = process.env.BENCH_TEXT_SHAPE ?? 'web';
    if (textShape !== 'web' && textShape !== 'long' && textShape !== 'feed')
      throw new BenchError('BENCH_TEXT_SHAPE must be web, long or feed');
  } catch (error) {
    console.error(`bench: ${(error as Error).message}`);
    return 1;
  }
  const keep = process.env.BENCH_KEEP === '1';
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-bench-'));
  const cleanup = () => {
    for (const child of liveChildren) child.kill('SIGKILL');
    if (keep) console.log(`kept ${dir} (BENCH_KEEP=1)`);
    else rmSync(dir, { recursive: true, force: true });
  };
  // A 1 GiB core left in /tmp by an interrupted run is worth a handler.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanup();
      process.exit(130);
    });
  }

  let exitCode = 0;
  try {
    console.log(`making a core from a ${mib} MiB heap in ${dir} ...`);
    const core = await makeCore(dir, mib);
    if (core.bytes < mib * MIB) {
      throw new BenchError(`core is ${core.bytes} bytes, less than the ${mib} MiB heap: truncated dump?`);
    }
    console.log(
      `core: ${core.bytes} bytes (${(core.bytes / GIB).toFixed(3)} GiB), made by ${core.how} in ` +
        `${core.seconds.toFixed(2)} s`,
    );
    // Written back to disk before anything is timed: otherwise the kernel writes the gigabyte out
    // in the background during the first rounds, on the cores the contenders are timed on.
    const coreFd = openSync(core.path, 'r');
    try {
      fsyncSync(coreFd);
    } finally {
      closeSync(coreFd);
    }

    const grepScript = 'LC_ALL=C grep -aoE \'https?://[^[:space:]"]+\' "$1" | sort | uniq -c';
    const cat: Contender = {
      name: 'cat > /dev/null',
      command: 'bash',
      args: ['-c', 'cat "$1" > /dev/null', 'bench', core.path],
      options: { cwd: dir },
      results: [],
    };
    const grep: Contender = {
      name: 'grep | sort | uniq -c',
      command: 'bash',
      args: ['-c', grepScript, 'bench', core.path],
      options: { cwd: dir, captureStdout: true },
      results: [],
    };
    const oursName = 'nightshift analyze';
    const ours: Contender = {
      name: oursName,
      command: nightshiftBin,
      args: ['analyze', core.path, '--json', '--stats'],
      options: { cwd: repoRoot, captureStdout: true },
      results: [],
    };
    let oursStatus = 'NOT RUN';
    if (!existsSync(nightshiftBin)) {
      ours.failure = `${nightshiftBin} does not exist (analyzer not written yet?)`;
    } else {
      try {
        accessSync(nightshiftBin, constants.X_OK);
      } catch (error) {
        ours.failure = `${nightshiftBin}: ${(error as Error).message}`;
      }
    }
    const oursRan = ours.failure === undefined;
    await timeInterleaved([cat, grep, ours], RUNS);
    for (const reference of [cat, grep])
      if (reference.failure !== undefined) throw new BenchError(reference.failure);
    if (oursRan && ours.failure !== undefined) oursStatus = 'FAILED';
    const oursProblem = ours.failure;

    const rows: Timed[] = [timed(cat), timed(grep)];
    const grepTimed = timed(grep);
    const grepCounts = parseUniqCounts(grep.results.at(-1)!.stdout);

    // The reference itself is checked against what was planted, so a grep/ours disagreement
    // can be blamed on the right side.
    const grepVsPlanted = diffCounts(core.planted, grepCounts, 'planted', 'grep');
    console.log(
      grepVsPlanted.length === 0
        ? `grep vs planted: exact (${core.planted.size} URLs; grep saw ${grepCounts.size} distinct matches)`
        : `grep vs planted: ${grepVsPlanted.length} differ\n${grepVsPlanted.join('\n')}`,
    );

    const rss = new Map<string, string>();
    const goals: string[] = [];
    const oursTimed = ours.failure === undefined ? timed(ours) : undefined;

    let peakRss: number | undefined;
    if (oursTimed) {
      rows.push(oursTimed);
      const stats = ours.results.map((r) => parseStats(r.stderr));
      const rssValues = stats.map((s) => s?.maxRssBytes).filter((v) => v !== undefined);
      // Worst of the runs: the goal is a ceiling, not a typical value.
      peakRss = rssValues.length === RUNS ? Math.max(...rssValues) : undefined;
      rss.set(oursName, peakRss === undefined ? 'unknown' : fmtMiB(peakRss));
    }

    console.log('');
    printTable(rows, core.bytes, grepTimed.median, rss);
    console.log('');

    if (oursTimed) {
      const last = ours.results.at(-1)!;
      const stats = parseStats(last.stderr);
      if (!stats) {
        console.log('ours: no {"stats":…} line on stderr; peak RSS unknown');
      } else {
        const notes = [];
        if (stats.elapsedMs !== undefined) {
          notes.push(
            `internal ${(stats.elapsedMs / 1000).toFixed(3)} s of ${last.seconds.toFixed(3)} s wall`,
          );
        }
        if (stats.bytes !== undefined) {
          notes.push(
            stats.bytes === core.bytes
              ? 'read the whole core'
              : `read ${stats.bytes} of ${core.bytes} bytes (!)`,
          );
        }
        if (notes.length > 0) console.log(`ours (last run): ${notes.join('; ')}`);
      }
      try {
        const ourCounts = parseOurUrls(last.stdout);
        const vsGrep = diffCounts(ourCounts, grepCounts, 'ours', 'grep');
        if (ourCounts.size === 0) {
          console.log(
            `URL counts, ours vs grep: NOTHING TO COMPARE (ours reported no URLs; grep ${grepCounts.size})`,
          );
        } else if (vsGrep.length === 0) {
          console.log(`URL counts, ours vs grep: AGREE on all ${ourCounts.size} URLs ours reports`);
        } else {
          console.log(`URL counts, ours vs grep: DISAGREE on ${vsGrep.length} of ${ourCounts.size}`);
          for (const line of vsGrep.slice(0, 20)) console.log(line);
          if (vsGrep.length > 20) console.log(`  ... and ${vsGrep.length - 20} more`);
        }
        const vsPlanted = diffCounts(core.planted, ourCounts, 'planted', 'ours');
        console.log(
          vsPlanted.length === 0
            ? `URL counts, ours vs planted: exact (${core.planted.size} URLs)`
            : `URL counts, ours vs planted: ${vsPlanted.length} of ${core.planted.size} differ\n${vsPlanted.join('\n')}`,
        );
      } catch (error) {
        if (!(error instanceof BenchError)) throw error;
        console.log(`URL counts: CANNOT CHECK: ${error.message}`);
        exitCode = 1;
      }

      const faster = oursTimed.median < grepTimed.median;
      goals.push(
        `${faster ? 'PASS' : 'FAIL'}  ours faster than the grep pipeline ` +
          `(${oursTimed.median.toFixed(3)} s vs ${grepTimed.median.toFixed(3)} s)`,
      );
      goals.push(
        peakRss === undefined
          ? 'UNKNOWN  peak RSS < 256 MiB (no stats line from every run)'
          : `${peakRss < RSS_GOAL_BYTES ? 'PASS' : 'FAIL'}  peak RSS < 256 MiB (${fmtMiB(peakRss)})`,
      );
    } else {
      console.log(`${oursName}: ${oursStatus}: ${oursProblem}`);
      goals.push('UNKNOWN  ours faster than the grep pipeline (analyzer did not run)');
      goals.push('UNKNOWN  peak RSS < 256 MiB (analyzer did not run)');
      exitCode = 1;
    }
    console.log('');
    for (const goal of goals) console.log(goal);
    if (textDumps > 0) {
      console.log('');
      await benchTextSet(dir);
    }
  } catch (error) {
    if (!(error instanceof BenchError)) throw error;
    console.error(`bench: ${error.message}`);
    exitCode = 1;
  } finally {
    cleanup();
  }
  return exitCode;
}

process.exitCode = await main();
