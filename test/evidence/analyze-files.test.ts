import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DumpStreamAnalyzer } from '../../src/analyze/dump.ts';
import { URL_PATTERN } from '../../src/analyze/extract.ts';
import { redact } from '../../src/analyze/redact.ts';
import { renderReport } from '../../src/analyze/render.ts';
import { type Dump, ReportSchema } from '../../src/analyze/report-schema.ts';
import { formatProgress } from '../../src/cli/progress.ts';
import { systemClock } from '../../src/clock.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { formatBytes } from '../../src/format-bytes.ts';
import {
  type CCore,
  FAKE_SECRETS,
  FEED_ITEM_URL,
  makeCCore,
  makePythonIncident,
  NT_FILE,
  noteOffset,
  PROFILE_PAYLOAD,
  type PythonIncident,
  REQUEST_LINE,
  STREAM_HEADERS,
  truncateCopy,
  wrapAsDockerCp,
  wrapManyAsDockerCp,
} from '../helpers/cores.ts';
import {
  gdbFacts,
  grepCount,
  grepMatchOffsets,
  grepUrls,
  grepUrlsOf,
  readelfNoteFiles,
  utf16Strings,
} from '../helpers/reference-tools.ts';

/** grep's spelling of the analyzer's URL pattern (src/analyze/extract.ts URL_PATTERN). */
const URL_ERE = 'https?://[][A-Za-z0-9._~:/?#@!$&()*+,;=%-]+';

const hex = (v: bigint) => `0x${v.toString(16)}`;

async function analyzeOne(
  path: string,
  options: Omit<Parameters<typeof analyzeFiles>[1], 'now'> = { workers: 0 },
): Promise<Dump> {
  const report = await analyzeFiles([path], { now: systemClock, ...options });
  assert.deepEqual(report.errors, []);
  assert.equal(report.dumps.length, 1);
  return report.dumps[0]!;
}

function httpUrls(d: Dump): Map<string, number> {
  return new Map(d.urls.filter((u) => /^https?:\/\//.test(u.value)).map((u) => [u.value, u.count]));
}

/** grep prints secrets; the analyzer never does: grep's matches, redacted as the analyzer would. */
function redacted(grep: Map<string, number>): Map<string, number> {
  const clean = new Map<string, number>();
  for (const [url, count] of grep) {
    const value = redact(url).text;
    clean.set(value, (clean.get(value) ?? 0) + count);
  }
  return clean;
}

const SECRET_ENV = Object.entries(FAKE_SECRETS).map(([name, value]) => `${name}=${value}`);

/**
 * The redactions a fixture core must count, from what grep finds in it: one per secret variable of
 * the environment read from the stack, one per NAME=secret string found as env evidence, and one
 * per occurrence of the Sentry DSN as a URL (its key is a password in the URL).
 */
async function expectedRedactions(core: string): Promise<number> {
  let count = SECRET_ENV.length;
  for (const variable of SECRET_ENV) count += await grepCount(core, variable);
  count += (await grepUrls(core, URL_ERE)).get(FAKE_SECRETS.SENTRY_DSN) ?? 0;
  return count;
}

const WIDE_SOURCE = join(import.meta.dirname, '../helpers/wide-string.c');
const MAPPED_SOURCE = join(import.meta.dirname, '../helpers/mapped-files.c');
/** The URL wide-string.c holds in UTF-16LE. */
const WIDE_URL = 'https://utf16.example.test/wide/path?q=1';

describe('C programs that crash (kernel cores, checked against gdb and readelf)', () => {
  let dir: string;
  let abort: CCore;
  let segv: CCore;
  let threads: CCore;
  const longArgs = [
    '--queue',
    'feeds-refresh',
    '--shard',
    'eu-west-1',
    `--note=${'x'.repeat(90)}`,
    'last-arg',
  ];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-c-'));
    abort = await makeCCore(join(dir, 'abort'), 'abort', { args: longArgs });
    segv = await makeCCore(join(dir, 'segv'), 'segv');
    threads = await makeCCore(join(dir, 'threads'), 'threads');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads how an aborting process died, as gdb does', async () => {
    const d = await analyzeOne(abort.path);
    const gdb = await gdbFacts(abort.executable, abort.path);
    assert.equal(d.signal?.name, gdb.signalName);
    assert.equal(d.signal?.number, 6);
    assert.equal(d.signal?.codeName?.startsWith('SI_TKILL'), true);
    assert.equal(d.signal?.senderPid, abort.pid, 'abort() signals itself');
    assert.equal(d.pid, abort.pid);
    assert.equal(d.threads, gdb.threadCount);
    assert.equal(d.threadList[0]!.pc, hex(gdb.pc));
    assert.equal(d.threadList[0]!.sp, hex(gdb.sp));
    assert.equal(d.executable, abort.executable);
    assert.equal(d.truncated, false);
    assert.equal(d.container, 'raw');
  });

  it('recovers the whole command line from the stack where PRPSINFO keeps 80 bytes', async () => {
    const d = await analyzeOne(abort.path);
    const gdb = await gdbFacts(abort.executable, abort.path);
    const full = abort.argv.join(' ');
    assert.ok(full.length > 80);
    assert.equal(d.commandLine, full);
    assert.equal(d.commandLineSource, 'stack');
    assert.ok(gdb.commandLine && full.startsWith(gdb.commandLine), `gdb says ${gdb.commandLine}`);
    assert.ok(d.psargs!.length <= 80);
  });

  it('lists the executable and the mapped libraries that readelf lists', async () => {
    const d = await analyzeOne(abort.path);
    const files = [...new Set((await readelfNoteFiles(abort.path)).map((f) => f.path))];
    assert.deepEqual([d.executable, ...d.libraries, ...d.mappedFiles].sort(), files.sort());
  });

  it('redacts the secrets in the environment and counts them', async () => {
    const d = await analyzeOne(abort.path);
    const json = JSON.stringify(d);
    assert.ok(!json.includes(FAKE_SECRETS.DATABASE_PASSWORD), 'password leaked');
    assert.ok(!json.includes('abc123publickey'), 'Sentry key leaked');
    assert.ok(d.environment.includes('DATABASE_PASSWORD=[REDACTED]'));
    // Each secret is once in this core, in the environment strings on the stack: 2 redactions in
    // the environment, 2 in those strings as env evidence, 1 for the DSN as a URL.
    assert.equal(await grepCount(abort.path, FAKE_SECRETS.DATABASE_PASSWORD), 1);
    assert.equal(await expectedRedactions(abort.path), 5);
    assert.equal(d.redactions, 5);
  });

  it('finds a URL held in UTF-16LE, as often as binutils strings -el finds it', async () => {
    const wide = await makeCCore(join(dir, 'wide'), 'abort', { source: WIDE_SOURCE });
    const d = await analyzeOne(wide.path);
    const expected = (await utf16Strings(wide.path)).filter((s) => s.includes(WIDE_URL)).length;
    assert.ok(expected >= 1, 'strings -el finds the URL in the core');
    assert.equal(await grepCount(wide.path, WIDE_URL), 0, 'no ASCII copy to confuse the count');
    const found = d.evidence.find((e) => e.kind === 'url' && e.value === WIDE_URL);
    assert.deepEqual(found, { kind: 'url', value: WIDE_URL, count: expected, encoding: 'utf16le' });
  });

  it('reads a NULL dereference: SIGSEGV, SEGV_MAPERR, fault address 0', async () => {
    const d = await analyzeOne(segv.path);
    const gdb = await gdbFacts(segv.executable, segv.path);
    assert.equal(d.signal?.name, gdb.signalName);
    assert.equal(d.signal?.name, 'SIGSEGV');
    assert.match(d.signal?.codeName ?? '', /^SEGV_MAPERR/);
    assert.equal(d.signal?.faultAddress, '0x0');
    assert.match(d.signal?.meaning ?? '', /NULL/);
    assert.equal(d.threadList[0]!.pc, hex(gdb.pc));
  });

  it('counts threads as gdb does', async () => {
    const d = await analyzeOne(threads.path);
    const gdb = await gdbFacts(threads.executable, threads.path);
    assert.equal(d.threads, 4);
    assert.equal(d.threads, gdb.threadCount);
  });

  it('finds the URL the program put on its heap', async () => {
    const d = await analyzeOne(abort.path);
    assert.ok(d.urls.some((u) => u.value === abort.heapUrl));
  });

  it('reads gdb gcore cores of the same programs', async () => {
    const live = await makeCCore(join(dir, 'gcore'), 'abort', { args: longArgs, via: 'gcore' });
    const d = await analyzeOne(live.path);
    const gdb = await gdbFacts(live.executable, live.path);
    assert.equal(d.pid, live.pid);
    assert.equal(d.signal?.number, 0, 'a live process has no signal');
    assert.match(d.signal?.meaning ?? '', /gcore/);
    assert.equal(
      d.commandLine,
      live.argv.join(' '),
      'gcore keeps only argv[0] in PRPSINFO; the stack has the rest',
    );
    assert.equal(d.threads, gdb.threadCount);
    assert.equal(d.threadList[0]!.pc, hex(gdb.pc));
    assert.ok(d.urls.some((u) => u.value === live.heapUrl));
  });

  it('says a SIGSEGV or SIGBUS sent with kill() was sent, not a memory fault', async () => {
    for (const signal of ['SIGSEGV', 'SIGBUS'] as const) {
      const killed = await makeCCore(join(dir, `kill-${signal}`), 'abort', { killWith: signal });
      const report = await analyzeFiles([killed.path], { now: systemClock, workers: 0 });
      const d = report.dumps[0]!;
      assert.equal(d.signal?.name, signal);
      assert.match(d.signal?.codeName ?? '', /^SI_USER/);
      assert.equal(d.signal?.senderPid, process.pid);
      assert.equal(d.signal?.faultAddress, null);
      assert.match(
        d.signal?.meaning ?? '',
        new RegExp(`^${signal} sent by another process \\(pid ${process.pid}\\)`),
      );
      assert.doesNotMatch(d.signal?.meaning ?? '', /invalid memory access|bad memory access/);
      assert.match(d.signal?.meaning ?? '', /not a memory fault/);
      assert.ok(
        report.findings.some((f) => f.title === `1 of 1 dumps died of ${signal}, sent by another process`),
      );
      assert.ok(!report.nextSteps.some((s) => s.includes('-ex bt')), 'no backtrace hunt for a kill');
    }
  });

  it('says a gcore core was taken by gcore while running, never "died of none"', async () => {
    const live = await makeCCore(join(dir, 'gcore-report'), 'abort', { via: 'gcore' });
    const report = await analyzeFiles([live.path], { now: systemClock, workers: 0 });
    const text = renderReport(report);
    assert.ok(
      report.findings.some((f) => f.title === '1 of 1 dumps taken by gcore while running (no signal)'),
      JSON.stringify(report.findings),
    );
    assert.ok(!JSON.stringify(report.findings).includes('none'));
    assert.doesNotMatch(text, /died of none|, none\n/);
    assert.match(text, /^S1: 1 dump of .*crash-abort, taken by gcore while running \(no signal\)$/m);
  });

  it('keeps shared objects in libraries and names the other mapped files mappedFiles', async () => {
    const data = join(dir, 'hsperfdata_nightshift');
    mkdirSync(data);
    writeFileSync(join(data, '4711'), Buffer.alloc(4096, 1));
    const mapped = await makeCCore(join(dir, 'mapped'), 'abort', {
      source: MAPPED_SOURCE,
      args: [join(data, '4711')],
    });
    const d = await analyzeOne(mapped.path);
    const files = new Set((await readelfNoteFiles(mapped.path)).map((f) => f.path));
    assert.deepEqual(new Set([d.executable, ...d.libraries, ...d.mappedFiles]), files);
    assert.ok(
      d.libraries.some((l) => /\/libc\.so\.6$/.test(l)),
      d.libraries.join(' '),
    );
    for (const l of d.libraries) assert.match(l, /\.so(\.[\w.-]+)?$/);
    assert.ok(d.mappedFiles.includes(join(data, '4711')), d.mappedFiles.join(' '));
    assert.ok(!d.libraries.includes(join(data, '4711')));
    if ([...files].some((f) => f.includes('io_uring'))) {
      assert.ok(d.mappedFiles.some((f) => f.includes('anon_inode:[io_uring]')));
    }
  });

  it('gives a core cut before its NT_FILE note its program path, in the signature of the others', async () => {
    // Started through a symlink, as python3 is to python3.11: argv[0] names the link, NT_FILE the file.
    const executable = (await makeCCore(join(dir, 'cut-a'), 'abort')).executable;
    const link = join(dir, 'cut-link');
    symlinkSync(executable, link);
    const a = await makeCCore(join(dir, 'cut-b'), 'abort', { launchAs: link, args: ['--job', 'feeds'] });
    const b = await makeCCore(join(dir, 'cut-c'), 'abort', { launchAs: link, args: ['--job', 'feeds'] });
    const cut = await truncateCopy(
      b.path,
      join(dir, 'cut-before-nt-file.core'),
      await noteOffset(b.path, NT_FILE),
    );
    const report = await analyzeFiles([a.path, cut], { now: systemClock, workers: 0 });
    assert.deepEqual(report.errors, []);
    const [whole, short] = report.dumps;
    assert.equal(whole!.executable, executable);
    assert.equal(short!.truncated, true);
    assert.deepEqual(short!.libraries, []);
    assert.equal(short!.pid, b.pid);
    assert.equal(short!.executable, executable, 'the path the other dump mapped, not crash-abort');
    assert.equal(short!.executableSource, 'other_dump');
    assert.deepEqual(
      report.signatures.map((s) => [s.count, s.executable, s.signal]),
      [[2, executable, 'SIGABRT']],
    );
    // Alone, it still names a path: argv[0], not the 15-byte process name.
    const alone = await analyzeOne(cut);
    assert.equal(alone.executable, link);
    assert.equal(alone.executableSource, 'argv0');
  });

  it('dates a dump by its tar member or gzip header, and says so when only a file time is known', async () => {
    const core = await makeCCore(join(dir, 'dated'), 'abort');
    const crashed = new Date('2026-01-02T03:04:05Z');
    utimesSync(core.path, crashed, crashed);
    const gz = join(dir, 'dated.core.gz');
    writeFileSync(gz, execFileSync('gzip', ['-c', core.path])); // gzip keeps the core's mtime in its header
    const tar = await wrapAsDockerCp(core.path, join(dir, 'dated.tar'), { name: 'core.1' });
    const raw = join(dir, 'dated.core');
    copyFileSync(core.path, raw);
    // As a git clone or a copy leaves them: every file's mtime is the time of the copy.
    const copied = new Date('2026-03-04T05:06:07Z');
    for (const file of [gz, tar, raw]) utimesSync(file, copied, copied);
    const report = await analyzeFiles([gz, tar, raw], { now: systemClock, workers: 0 });
    assert.deepEqual(report.errors, []);
    const byFile = new Map(report.dumps.map((d) => [d.file, d]));
    assert.deepEqual(
      [gz, tar, raw].map((f) => [byFile.get(f)!.time, byFile.get(f)!.timeSource]),
      [
        [crashed.toISOString(), 'gzip'],
        [crashed.toISOString(), 'tar'],
        [copied.toISOString(), 'file'],
      ],
    );
    assert.equal(byFile.get(gz)!.mtime, copied.toISOString(), 'mtime stays the file time');
    const [sig] = report.signatures;
    assert.equal(report.signatures.length, 1);
    assert.equal(sig!.firstSeen, crashed.toISOString());
    assert.deepEqual([...sig!.timeSources].sort(), ['file', 'gzip', 'tar']);
    const seen = renderReport(report)
      .split('\n')
      .find((l) => l.startsWith('  seen'));
    assert.match(
      seen ?? '',
      /^ {2}seen {6}2026-01-02 03:04Z to 2026-03-04 05:06Z \(from .*modification times.*\)$/,
    );
    // Without the raw copy, every time is the crash's own.
    const inside = await analyzeFiles([gz, tar], { now: systemClock, workers: 0 });
    assert.deepEqual(
      [inside.signatures[0]!.firstSeen, inside.signatures[0]!.lastSeen],
      [crashed.toISOString(), crashed.toISOString()],
    );
    assert.doesNotMatch(renderReport(inside), /modification times/);
  });

  it('counts the same bytes in the progress bar and in the report: the files read, besides the cores', async () => {
    const gz = join(dir, 'progress.core.gz');
    writeFileSync(gz, gzipSync(readFileSync(abort.path), { level: 1 }));
    const tgz = await wrapAsDockerCp(segv.path, join(dir, 'progress.tar.gz'), { gzip: true });
    let last: [number, number] = [0, 0];
    const files = [gz, tgz, threads.path];
    const report = await analyzeFiles(files, {
      now: systemClock,
      workers: 0,
      onProgress: (done, total) => (last = [done, total]),
    });
    const onDisk = files.reduce((sum, f) => sum + statSync(f).size, 0);
    assert.deepEqual(last, [onDisk, onDisk], 'the bar ends at the files read');
    assert.equal(report.totals.fileBytes, onDisk);
    assert.ok(report.totals.bytes > onDisk, 'the cores are larger than the compressed files');
    const first = renderReport(report).split('\n')[0]!;
    assert.equal(
      first,
      `Nightshift: 3 dumps analysed, ${formatBytes(report.totals.bytes)} of cores, from ${formatBytes(onDisk)} of files read`,
    );
    assert.ok(
      formatProgress(last[0], last[1], 1000).includes(
        `${formatBytes(onDisk)}/${formatBytes(onDisk)} of files read`,
      ),
    );
  });

  it('reads the same core raw, gzipped, as docker cp tar, and as docker cp tar | gzip', async () => {
    const raw = await analyzeOne(abort.path);
    const forms: Array<[string, string]> = [
      ['gzip', join(dir, 'core.gz')],
      ['tar', join(dir, 'core.tar')],
      ['tar+gzip', join(dir, 'core.tar.gz')],
    ];
    writeFileSync(forms[0]![1], gzipSync(readFileSync(abort.path), { level: 1 }));
    await wrapAsDockerCp(abort.path, forms[1]![1], { name: 'core.4711' });
    await wrapAsDockerCp(abort.path, forms[2]![1], { name: 'core.4711', gzip: true });
    for (const [container, path] of forms) {
      const d = await analyzeOne(path);
      assert.equal(d.container, container);
      assert.equal(d.entry, container.startsWith('tar') ? 'core.4711' : null);
      assert.equal(d.sizeBytes, raw.sizeBytes);
      // Everything but where the core came from (file, container, times) must match.
      const unwrapped = {
        file: '',
        entry: null,
        container: 'raw',
        fileBytes: 0,
        mtime: '',
        time: '',
        timeSource: 'file',
      } as const;
      assert.deepEqual({ ...d, ...unwrapped }, { ...raw, ...unwrapped }, `${container} differs from raw`);
    }
  });

  it('analyses every core in one docker cp tar of a directory', async () => {
    const tar = join(dir, 'many.tar.gz');
    await wrapManyAsDockerCp(
      [
        { path: abort.path, name: 'core.abort' },
        { path: segv.path, name: 'core.segv' },
        { path: threads.path, name: 'core.threads' },
      ],
      tar,
      { gzip: true, dir: 'crash' },
    );
    const report = await analyzeFiles([tar], { now: systemClock, workers: 0 });
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.dumps.map((d) => d.signal?.name).sort(), ['SIGABRT', 'SIGABRT', 'SIGSEGV']);
    assert.ok(report.dumps.every((d) => d.container === 'tar+gzip' && d.entry?.startsWith('crash/')));
  });

  it('reports a core cut short as truncated, with what could be read', async () => {
    const cut = await truncateCopy(abort.path, join(dir, 'truncated.core'), 200_000);
    const d = await analyzeOne(cut);
    assert.equal(d.truncated, true);
    assert.equal(d.sizeBytes, 200_000);
    assert.ok(d.expectedBytes > 200_000);
    assert.equal(d.pid, abort.pid);
    assert.equal(d.signal?.name, 'SIGABRT');
    const gz = join(dir, 'truncated.core.gz');
    const whole = gzipSync(readFileSync(abort.path));
    writeFileSync(gz, whole.subarray(0, Math.floor(whole.length / 2)));
    const z = await analyzeOne(gz);
    assert.equal(z.truncated, true);
    assert.equal(z.pid, abort.pid);
  });

  it('names what a file is when it is not a core, and goes on with the rest', async () => {
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'not a core\n');
    const big = join(dir, 'big-endian.core');
    const bytes = readFileSync(abort.path).subarray(0, 4096);
    bytes[5] = 2; // EI_DATA: big-endian
    writeFileSync(big, bytes);
    const elf32 = join(dir, 'elf32.core');
    const b32 = readFileSync(abort.path).subarray(0, 4096);
    b32[4] = 1; // EI_CLASS: 32-bit
    writeFileSync(elf32, b32);
    const report = await analyzeFiles(
      [abort.path, abort.executable, text, big, elf32, join(dir, 'missing')],
      { now: systemClock, workers: 0 },
    );
    assert.equal(report.dumps.length, 1);
    const byFile = new Map(report.errors.map((e) => [e.file, e]));
    assert.match(byFile.get(abort.executable)!.message, /not a core dump: (an executable|a shared object)/);
    assert.equal(byFile.get(abort.executable)!.code, 'nightshift_not_core');
    assert.match(byFile.get(text)!.message, /not a core dump: a text file/);
    assert.match(byFile.get(big)!.message, /big-endian/);
    assert.match(byFile.get(elf32)!.message, /32-bit/);
    assert.equal(byFile.get(join(dir, 'missing'))!.code, 'nightshift_unreadable_file');
  });
});

describe('the incident in miniature: 8 Python workers, 6 stuck on an endless radio stream', () => {
  let dir: string;
  let incident: PythonIncident;
  let report: Awaited<ReturnType<typeof analyzeFiles>>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-py-'));
    incident = await makePythonIncident(join(dir, 'run'), { workers: 8, streamWorkers: 6 });
    await incident.close();
    // As collected: some raw, some gzipped, some as docker cp streams, in one directory.
    const evidence = join(dir, 'evidence');
    mkdirSync(evidence);
    for (const [i, core] of incident.cores.entries()) {
      const name = `${core.name}.core.${core.pid}`;
      if (i % 3 === 0) copyFileSync(core.path, join(evidence, name));
      else if (i % 3 === 1)
        writeFileSync(join(evidence, `${name}.gz`), gzipSync(readFileSync(core.path), { level: 1 }));
      else await wrapAsDockerCp(core.path, join(evidence, `${name}.tar.gz`), { gzip: true, name: 'core' });
    }
    report = await analyzeFiles([evidence], { now: systemClock, workers: 2, rangeBytes: 1 << 20 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('analyses all eight dumps and produces a valid document', () => {
    ReportSchema.parse(report);
    assert.deepEqual(report.errors, []);
    assert.equal(report.dumps.length, 8);
  });

  it('ranks the stream URL first: in 6 of 8 dumps, flagged as an endless stream', () => {
    const top = report.correlations[0]!;
    assert.equal(top.value, incident.streamUrl);
    assert.equal(top.dumps, 6);
    assert.equal(top.total, 8);
    assert.equal(top.stream, true);
    assert.match(top.why, /in 6 of 8 dumps/);
    assert.equal(report.findings[0]!.severity, 'critical');
    assert.match(
      report.findings[0]!.title,
      new RegExp(`in 6 of 8 dumps: ${incident.streamUrl.replace(/[.?]/g, '\\$&')}`),
    );
  });

  it('ties the stream URL to exactly the workers that read it', () => {
    const top = report.correlations[0]!;
    const streamPids = incident.cores
      .filter((c) => c.streamWorker)
      .map((c) => c.pid)
      .sort();
    const pids = report.dumps
      .filter((d) => top.files.includes(d.entry ? `${d.file}:${d.entry}` : d.file))
      .map((d) => d.pid);
    assert.deepEqual(pids.sort(), streamPids);
  });

  it('finds the response headers, the request line and the profiling payload', () => {
    const values = new Set(report.correlations.map((c) => `${c.kind} ${c.value}`));
    assert.ok(values.has(`header content-type: ${STREAM_HEADERS['Content-Type']}`));
    assert.ok(values.has(`header icy-name: ${STREAM_HEADERS['icy-name']}`));
    assert.ok(values.has(`request ${REQUEST_LINE.replace(/ HTTP\/1\.1$/, '')}`));
    assert.ok(values.has(`transaction ${PROFILE_PAYLOAD.transaction}`));
    assert.ok(values.has(`function ${PROFILE_PAYLOAD.profile.frames[0].function}`));
    const dump = report.dumps[0]!;
    assert.ok(dump.evidence.some((e) => e.kind === 'release' && e.value === PROFILE_PAYLOAD.release));
    assert.ok(dump.evidence.some((e) => e.kind === 'payload' && e.value === 'profiling payload'));
  });

  it('groups the dumps into two signatures: on the stream, and elsewhere', () => {
    assert.deepEqual(
      report.signatures.map((s) => [s.count, s.signal, s.topEvidence]),
      [
        [6, 'SIGABRT', incident.streamUrl],
        // The link of the item in the feed the two other workers read: only they hold it.
        [2, 'SIGABRT', FEED_ITEM_URL],
      ],
    );
    const feedPids = incident.cores.filter((c) => !c.streamWorker).map((c) => c.pid);
    const members = report.dumps.filter((d) => d.signature === report.signatures[1]!.id).map((d) => d.pid);
    assert.deepEqual(members.sort(), feedPids.sort());
  });

  it('prints the headline finding first, then the signatures, then the details', () => {
    const lines = renderReport(report).split('\n');
    const headline = lines.findIndex((l) => l.startsWith('!! Likely endless stream in 6 of 8 dumps: '));
    assert.ok(headline > 0 && headline < 6, `headline at line ${headline + 1}`);
    assert.ok(lines[headline]!.endsWith(incident.streamUrl));
    const signatures = lines.findIndex((l) => l.startsWith('S1: '));
    const shared = lines.findIndex((l) => l.startsWith('Shared across the dumps'));
    assert.ok(headline < signatures && signatures < shared, `${headline} ${signatures} ${shared}`);
    assert.equal(lines.filter((l) => l.startsWith('!! Likely endless stream')).length, 1, 'printed once');
  });

  it('names the most telling request in the findings and in what to look at next', () => {
    const request = REQUEST_LINE.replace(/ HTTP\/1\.1$/, '');
    const finding = report.findings.find((f) => f.title.endsWith(`: ${request}`));
    assert.ok(finding, JSON.stringify(report.findings.map((f) => f.title)));
    assert.match(finding.title, /in 8 of 8 dumps/);
    assert.ok(
      report.nextSteps.some((s) => s.includes(request)),
      JSON.stringify(report.nextSteps),
    );
    const text = renderReport(report);
    assert.ok(text.slice(text.indexOf('What to look at next')).includes(request));
  });

  it('says the application functions in every dump are in every dump, and ranks library strings below them', () => {
    const functions = PROFILE_PAYLOAD.profile.frames.map((f) => f.function);
    const ranks = functions.map((name) =>
      report.correlations.findIndex((c) => c.kind === 'function' && c.value === name),
    );
    for (const [i, rank] of ranks.entries()) {
      assert.ok(rank >= 0, `${functions[i]} is correlated`);
      const c = report.correlations[rank]!;
      assert.match(c.why, /in every dump/);
      assert.doesNotMatch(c.why, /furniture/);
    }
    // Strings every dump holds that are not the application's: the interpreter's, a library's.
    const library = report.correlations
      .map((c, i) => ({ c, i }))
      .filter(({ c }) => c.kind === 'url' && c.dumps === 8 && !c.stream);
    assert.ok(library.length > 0, 'the workers share library URLs (the Sentry DSN at least)');
    for (const { c, i } of library) {
      assert.ok(i > Math.max(...ranks), `${c.value} (${c.why}) ranks above the application's functions`);
    }
  });

  it('keeps a worker core cut before its NT_FILE note with its interpreter, and out of "every dump"', async () => {
    const core = incident.cores[0]!;
    const cut = await truncateCopy(core.path, join(dir, 'cut.core'), await noteOffset(core.path, NT_FILE));
    const withCut = await analyzeFiles([join(dir, 'evidence'), cut], { now: systemClock, workers: 0 });
    const short = withCut.dumps.find((d) => d.file === cut)!;
    const executable = report.dumps[0]!.executable;
    assert.equal(short.truncated, true);
    assert.equal(short.executable, executable, `${short.executable} (${short.executableSource})`);
    assert.deepEqual(
      withCut.signatures.map((s) => [s.count, s.executable, s.topEvidence]),
      [
        [7, executable, incident.streamUrl],
        [2, executable, FEED_ITEM_URL],
      ],
    );
    const fetchFeed = withCut.correlations.find((c) => c.kind === 'function' && c.value === 'fetch_feed')!;
    assert.match(fetchFeed.why, /^in 8 of 9 dumps; in every dump not cut short$/);
  });

  it('says the workers were killed by another process, and which', () => {
    const senders = new Set(report.dumps.map((d) => d.signal?.senderPid));
    assert.deepEqual([...senders], [process.pid], 'the test process sent SIGABRT');
    assert.ok(report.findings.some((f) => f.title === `8 dumps were killed by pid ${process.pid}`));
  });

  it('keeps every worker command line and never prints a secret', async () => {
    for (const core of incident.cores) {
      const d = report.dumps.find((x) => x.pid === core.pid)!;
      assert.equal(d.commandLine, core.argv.join(' '));
    }
    const json = JSON.stringify(report);
    assert.ok(!json.includes(FAKE_SECRETS.DATABASE_PASSWORD));
    assert.ok(!json.includes('abc123publickey'));
    let expected = 0;
    for (const core of incident.cores) {
      const d = report.dumps.find((x) => x.pid === core.pid)!;
      const own = await expectedRedactions(core.path);
      assert.equal(d.redactions, own, core.name);
      expected += own;
    }
    assert.equal(report.totals.redactions, expected);
  });

  it('finds exactly the URLs grep finds in each core, across 65,537-byte ranges and chunk boundaries', async () => {
    for (const core of incident.cores.slice(0, 3)) {
      const d = await analyzeOne(core.path, { workers: 2, rangeBytes: 65_537 });
      assert.deepEqual(httpUrls(d), redacted(await grepUrls(core.path, URL_ERE)), core.path);
    }
    assert.equal(URL_PATTERN.source, String.raw`https?:\/\/[\][A-Za-z0-9._~:/?#@!$&()*+,;=%-]+`);
  });

  it('finds exactly the URLs grep finds in the decompressed stream of the gzip, tar and tar+gzip forms', async () => {
    const evidence = join(dir, 'evidence');
    const at = (i: number) => incident.cores[i]!;
    const tar = await wrapAsDockerCp(at(0).path, join(dir, 'web-1.tar'), { name: 'core' });
    const forms: Array<[string, string, string, string[]]> = [
      ['gzip', join(evidence, `${at(1).name}.core.${at(1).pid}.gz`), 'gzip', ['-dc']],
      ['tar', tar, 'tar', ['-xOf']],
      ['tar+gzip', join(evidence, `${at(2).name}.core.${at(2).pid}.tar.gz`), 'tar', ['-xOzf']],
    ];
    for (const [container, file, tool, args] of forms) {
      const d = await analyzeOne(file, { workers: 2 });
      assert.equal(d.container, container);
      const grep = redacted(await grepUrlsOf(tool, [...args, file], URL_ERE));
      assert.ok(
        grep.has(incident.feedUrl) || grep.has(incident.streamUrl),
        `${file}: grep found no worker URL`,
      );
      assert.deepEqual(httpUrls(d), grep, `${container}: ${file}`);
    }
  });

  it('finds a URL cut in two by a range boundary and by a chunk boundary as often as grep does', async () => {
    const core = incident.cores[0]!;
    const matches = await grepMatchOffsets(core.path, URL_ERE);
    const hits = matches.filter((m) => m.match === incident.streamUrl);
    assert.ok(hits.length > 0, 'grep finds the stream URL in the core');
    const cut = hits[0]!.offset + Math.floor(incident.streamUrl.length / 2);
    const count = (urls: Map<string, number>) => urls.get(incident.streamUrl);
    // Raw: the first range ends in the middle of the URL.
    const ranged = await analyzeOne(core.path, { workers: 2, rangeBytes: cut });
    assert.equal(count(httpUrls(ranged)), hits.length);
    // Stream: the first chunk ends in the middle of the URL.
    const bytes = readFileSync(core.path);
    const analyzer = new DumpStreamAnalyzer();
    analyzer.push(bytes.subarray(0, cut));
    analyzer.push(bytes.subarray(cut));
    const streamed = analyzer
      .finish()
      .evidence.items.find((i) => i.kind === 'url' && i.value === incident.streamUrl);
    assert.equal(streamed?.count, hits.length);
  });

  it('gives the same report with worker threads as without', async () => {
    const inline = await analyzeFiles([join(dir, 'evidence')], { now: systemClock, workers: 0 });
    const strip = (r: typeof inline) => ({ ...r, generatedAt: '' });
    assert.deepEqual(strip(inline), strip({ ...report }));
  });
});
