/**
 * Real core dumps for the tests, made during the test run by real processes that
 * really crash: a small C program (scripts/examples/crash.c) and the Python incident
 * in miniature (scripts/examples/worker.py reading the endless radio stream of
 * scripts/examples/stream_server.py). Hand-made ELF bytes would only prove that the
 * analyzer agrees with our own idea of a core; these are what the kernel and gdb
 * actually write. The same three source files build examples/ (see
 * scripts/make-example-cores.sh), so tests and examples cannot drift apart.
 *
 * How a core is taken:
 * - 'kernel': the process runs in its own fresh directory under `ulimit -c
 *   unlimited` and crashes; with core_pattern `core` the kernel writes `<cwd>/core`.
 * - 'gcore': the process is stopped at a safe point, `gcore -o PREFIX PID` snapshots
 *   it, then it is killed. Used when asked for, and automatically when the kernel
 *   cannot deliver a core into the cwd (core_pattern is a pipe to systemd-coredump or
 *   apport, or an absolute path, or RLIMIT_CORE cannot be raised); each result says
 *   which way it was made in `via`.
 * Neither working is an Error, never a skip: a skipped fixture proves nothing.
 *
 * Children get a minimal, fixed environment (PATH, LANG and the fake secrets
 * below): the environment ends up in every core, so this keeps cores
 * reproducible and keeps the real environment of whoever runs the tests (tokens
 * included) out of fixtures and out of the committed examples.
 *
 * Every helper kills the processes it started when anything goes wrong, and all
 * long-lived children also exit on their own once their stdin closes, so even a
 * test runner that dies mid-way leaves nothing behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  copyFile,
  link,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { constants } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { requireTool, runTool } from './reference-tools.ts';

/** Where the fixture programs live (shared with scripts/make-example-cores.sh). */
export const EXAMPLE_SOURCES_DIR = resolve(import.meta.dirname, '../../scripts/examples');
export const WORKER_SCRIPT = join(EXAMPLE_SOURCES_DIR, 'worker.py');
export const STREAM_SERVER_SCRIPT = join(EXAMPLE_SOURCES_DIR, 'stream_server.py');
export const CRASH_SOURCE = join(EXAMPLE_SOURCES_DIR, 'crash.c');

/**
 * What each Python worker holds in memory. Mirrors PROFILE_PAYLOAD in worker.py,
 * which serialises it with separators=(',', ':'), i.e. exactly PROFILE_PAYLOAD_JSON;
 * test/helpers/fixtures.test.ts greps the cores for these bytes, so a drift between
 * the two copies fails a test.
 */
export const PROFILE_PAYLOAD = {
  type: 'transaction',
  transaction: '/api/feeds/refresh',
  release: 'webapp@2026.11.3',
  environment: 'production',
  profile: {
    frames: [
      { function: 'fetch_feed', module: 'feeds.fetch', filename: 'feeds/fetch.py', lineno: 42 },
      { function: 'read_chunked', module: 'feeds.http', filename: 'feeds/http.py', lineno: 117 },
    ],
  },
} as const;
export const PROFILE_PAYLOAD_JSON: string = JSON.stringify(PROFILE_PAYLOAD);
export const REQUEST_LINE = 'GET /api/feeds/refresh?customer=4711 HTTP/1.1';
export const WORKER_USER_AGENT = 'nightshift-webapp/2026.11.3 (+feeds)';

/** The endless stream and the finite feed served by stream_server.py. */
export const STREAM_PATH = '/live/radio.mp3';
export const FEED_PATH = '/feeds/ok.xml';
/** The link of the one item in that feed (stream_server.py): only the workers that read it hold it. */
export const FEED_ITEM_URL = 'http://example.test/status/1';
export const STREAM_HEADERS = {
  'Content-Type': 'audio/mpeg',
  'icy-name': 'Nightshift Test Radio',
  'icy-br': '128',
  'icy-metaint': '16000',
} as const;
/** The ICY metadata title inserted every 16000 stream bytes. */
export const STREAM_TITLE = 'Nightshift Test Radio - Graveyard Shift Blues';

/** Fake secrets in the environment of every fixture process (workers and C), for redaction tests. */
export const FAKE_SECRETS = {
  DATABASE_PASSWORD: 'hunter2-s3cret',
  SENTRY_DSN: 'https://abc123publickey@o4711.ingest.sentry.io/42',
} as const;

/** crash.c copies `${C_HEAP_URL_PREFIX}${kind}` into malloc'd memory. */
export const C_HEAP_URL_PREFIX = 'http://example.test/c/';
/** The kernel keeps at most this many bytes of the command line (NT_PRPSINFO pr_psargs, ELF_PRARGSZ). */
export const PSARGS_LIMIT = 80;

/**
 * Python flags for the server and the workers: they need the standard library
 * only, and isolation (-I: no PYTHON* variables, no user site; -S: no site) makes
 * the cores independent of the machine's Python setup and a little smaller.
 */
export const PYTHON_FLAGS = ['-I', '-S'] as const;

/** How long a fixture may take to get ready, and then to turn into cores. */
const READY_TIMEOUT_MS = 20_000;
const COLLECT_TIMEOUT_MS = 20_000;

/**
 * Raise RLIMIT_CORE as far as allowed, then become the program. `exec` keeps the
 * pid, so the pid Node knows is the crashing process's pid. Run as `bash --norc
 * -c`: Node's stdio pipes are sockets, and Debian's bash sources ~/.bashrc when its
 * stdin is a socket (its rsh/ssh heuristic), which cost ~0.5 s per process here.
 */
const CORE_SHELL = 'ulimit -c unlimited 2>/dev/null || ulimit -c "$(ulimit -H -c)"; exec "$@"';

export type CrashKind = 'abort' | 'segv' | 'threads';
export type CoreVia = 'kernel' | 'gcore';

export interface CCoreOptions {
  /** Extra arguments (ignored by the program; there to appear in the core). */
  args?: string[];
  /**
   * Another C program to run instead of crash.c (default CRASH_SOURCE). It must die the `kind` way
   * and honour NIGHTSHIFT_WAIT_FOR_GCORE as crash.c does.
   */
  source?: string;
  /** Default 'kernel' (falls back to 'gcore' where the kernel cannot deliver). */
  via?: CoreVia;
  /**
   * Instead of letting it crash, wait until it is ready and send it this signal from the test
   * process with kill() (si_code SI_USER, the sender's pid in the core), as `kill -SEGV <pid>`
   * would. Kernel cores only: a gcore core holds no signal.
   */
  killWith?: NodeJS.Signals;
  /**
   * Start it through this path (e.g. a symlink to the compiled program), so argv[0] and AT_EXECFN
   * name it while NT_FILE maps the real file. Default: the compiled program.
   */
  launchAs?: string;
}

export interface CCore {
  kind: CrashKind;
  path: string;
  pid: number;
  /** Absolute path of the compiled program (what gdb needs next to the core). */
  executable: string;
  /** The full command line; the core's psargs keep only PSARGS_LIMIT bytes of it. */
  argv: string[];
  /**
   * The signal recorded in the core: 6 (SIGABRT) or 11 (SIGSEGV) for kernel cores.
   * 0 for gcore cores: gcore snapshots a live process, so its NT_PRSTATUS has
   * pr_cursig 0 (gdb prints no "Program terminated with signal" line), while its
   * NT_SIGINFO holds the SIGSTOP (19, si_code SI_KERNEL) from gdb's attach and
   * NT_PRPSINFO says state 't' (tracing stop).
   */
  signal: number;
  via: CoreVia;
  /** The string crash.c put on the heap. */
  heapUrl: string;
}

export interface PythonIncidentOptions {
  workers?: number;
  streamWorkers?: number;
  via?: CoreVia;
}

export interface PythonWorkerCore {
  /** web-1, web-2, ... (also passed to the worker as --name). */
  name: string;
  path: string;
  pid: number;
  /** The full command line, argv[0] being the real interpreter (pass it to gdbFacts). */
  argv: string[];
  /** Whether it read the endless stream (else it read the feed and idled). */
  streamWorker: boolean;
  /** The URL this worker fetched. */
  url: string;
  /** 6 (SIGABRT) for kernel cores, 0 for gcore cores (see CCore.signal). */
  signal: number;
  via: CoreVia;
}

export interface PythonIncident {
  cores: PythonWorkerCore[];
  streamUrl: string;
  feedUrl: string;
  /** The interpreter the workers ran (python3 resolved past any pyenv shim). */
  python: string;
  /**
   * Stops the stream server. Idempotent. (Forgetting it does not hang the test run:
   * the server does not keep Node alive and exits with it.)
   */
  close(): Promise<void>;
}

export interface CoreDumpSupport {
  /** Whether a crash under `ulimit -c unlimited` leaves a core in the process's cwd. */
  kernel: boolean;
  corePattern: string;
  reason: string;
}

let supportProbe: Promise<CoreDumpSupport> | undefined;

/** Can the kernel write cores where makeCCore/makePythonIncident look for them? (Probed once.) */
export function kernelCoreSupport(): Promise<CoreDumpSupport> {
  supportProbe ??= probeKernelCoreSupport();
  return supportProbe;
}

async function probeKernelCoreSupport(): Promise<CoreDumpSupport> {
  const corePattern = (await readFile('/proc/sys/kernel/core_pattern', 'utf8')).trim();
  if (corePattern.startsWith('|')) {
    return { kernel: false, corePattern, reason: `core_pattern pipes cores to a helper (${corePattern})` };
  }
  if (corePattern.includes('/')) {
    return {
      kernel: false,
      corePattern,
      reason: `core_pattern writes cores outside the cwd (${corePattern})`,
    };
  }
  const { stdout } = await runTool('bash', [
    '--norc',
    '-c',
    CORE_SHELL,
    'bash',
    'bash',
    '--norc',
    '-c',
    'ulimit -c',
  ]);
  if (stdout.trim() === '0') {
    return { kernel: false, corePattern, reason: 'RLIMIT_CORE is 0 and cannot be raised' };
  }
  return { kernel: true, corePattern, reason: `core_pattern ${corePattern}, RLIMIT_CORE ${stdout.trim()}` };
}

let pythonProbe: Promise<string> | undefined;

/**
 * The real interpreter behind `python3`. A pyenv shim is a bash script costing
 * ~0.3 s per start, and gdb needs the real binary next to the core anyway.
 */
export function resolvePython(): Promise<string> {
  pythonProbe ??= (async () => {
    requireTool('python3');
    const { stdout } = await runTool('python3', ['-c', 'import sys; print(sys.executable)']);
    const python = stdout.trim();
    if (python === '') throw new Error('python3 does not know its own executable (sys.executable is empty)');
    return python;
  })();
  return pythonProbe;
}

const compiled = new Map<string, Promise<string>>();

/** Compile crash.c for `kind` into `<dir>/bin/crash-<kind>` (once per dir and kind). */
export function compileCrasher(dir: string, kind: CrashKind, source = CRASH_SOURCE): Promise<string> {
  const program = source === CRASH_SOURCE ? 'crash' : basename(source, '.c');
  const executable = join(resolve(dir), 'bin', `${program}-${kind}`);
  let done = compiled.get(executable);
  if (done === undefined) {
    done = (async () => {
      requireTool('gcc');
      await mkdir(dirname(executable), { recursive: true });
      const partial = `${executable}.${process.pid}.partial`;
      await runTool('gcc', ['-O0', '-g', '-pthread', `-DCRASH_KIND="${kind}"`, '-o', partial, source]);
      await rename(partial, executable);
      return executable;
    })();
    compiled.set(executable, done);
    done.catch(() => compiled.delete(executable));
  }
  return done;
}

const EXPECTED_SIGNAL: Record<CrashKind, NodeJS.Signals> = {
  abort: 'SIGABRT',
  segv: 'SIGSEGV',
  threads: 'SIGABRT',
};

/**
 * Compile and run crash.c so that it dies the `kind` way, in a fresh directory
 * under `dir`, and return its core.
 */
export async function makeCCore(dir: string, kind: CrashKind, opts: CCoreOptions = {}): Promise<CCore> {
  const executable = await compileCrasher(dir, kind, opts.source);
  const support = await kernelCoreSupport();
  const via: CoreVia = (opts.via ?? 'kernel') === 'kernel' && support.kernel ? 'kernel' : 'gcore';
  const cwd = await mkdtemp(join(resolve(dir), `${kind}-`));
  if (opts.killWith !== undefined && via !== 'kernel') {
    throw new Error(
      `killWith needs kernel cores, and the kernel cannot deliver them here (${support.reason})`,
    );
  }
  const argv = [opts.launchAs ?? executable, ...(opts.args ?? [])];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', ...FAKE_SECRETS };
  if (via === 'gcore' || opts.killWith !== undefined) env.NIGHTSHIFT_WAIT_FOR_GCORE = '1';
  const what = `crash-${kind} (in ${cwd})`;
  const proc = startProcess('bash', ['--norc', '-c', CORE_SHELL, 'bash', ...argv], { cwd, env }, what);
  try {
    const base = { kind, pid: proc.pid, executable, argv, via, heapUrl: `${C_HEAP_URL_PREFIX}${kind}` };
    if (via === 'kernel') {
      if (opts.killWith !== undefined) {
        await proc.waitFor(/^READY \d+$/m, Date.now() + READY_TIMEOUT_MS);
        proc.kill(opts.killWith);
      }
      const exit = await withDeadline(proc.exited, Date.now() + COLLECT_TIMEOUT_MS, `${what} did not crash`);
      const expected = opts.killWith ?? EXPECTED_SIGNAL[kind];
      if (exit.signal !== expected) {
        throw new Error(`${what} ended with ${describeExit(exit)}, not ${expected}: ${proc.stderr()}`);
      }
      const path = await collectKernelCore(cwd, proc.pid, support);
      return { ...base, path, signal: constants.signals[expected] };
    }
    await proc.waitFor(/^READY \d+$/m, Date.now() + READY_TIMEOUT_MS);
    const path = await takeGcore(cwd, proc.pid, Date.now() + COLLECT_TIMEOUT_MS);
    return { ...base, path, signal: 0 };
  } finally {
    await proc.stop();
  }
}

/**
 * The incident in miniature: a stream server plus `workers` Python workers, the
 * first `streamWorkers` of them stuck reading the endless radio stream, the rest
 * done with the feed and idle; once all of them have the interesting strings in
 * memory, each gets SIGABRT (as the health check did) and leaves a core in
 * `<dir>/worker-<i>/core`. The stream server keeps running until close().
 */
export async function makePythonIncident(
  dir: string,
  { workers = 8, streamWorkers = 6, via = 'kernel' }: PythonIncidentOptions = {},
): Promise<PythonIncident> {
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`workers must be >= 1, got ${workers}`);
  if (!Number.isInteger(streamWorkers) || streamWorkers < 0 || streamWorkers > workers) {
    throw new RangeError(`streamWorkers must be between 0 and workers (${workers}), got ${streamWorkers}`);
  }
  const root = resolve(dir);
  const python = await resolvePython();
  const support = await kernelCoreSupport();
  const how: CoreVia = via === 'kernel' && support.kernel ? 'kernel' : 'gcore';
  if (how === 'gcore') requireTool('gcore');

  await mkdir(root, { recursive: true });
  const workerScript = join(root, 'worker.py');
  const serverScript = join(root, 'stream_server.py');
  await copyFile(WORKER_SCRIPT, workerScript);
  await copyFile(STREAM_SERVER_SCRIPT, serverScript);

  const baseEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' };
  const readyBy = Date.now() + READY_TIMEOUT_MS;
  const server = startProcess(
    python,
    [...PYTHON_FLAGS, serverScript, '--port', '0', '--exit-on-stdin-eof'],
    { cwd: root, env: baseEnv },
    'stream server',
  );
  const procs: Proc[] = [];
  try {
    const [, port] = await server.waitFor(/^LISTENING (\d+)$/m, readyBy);
    const streamUrl = `http://127.0.0.1:${port}${STREAM_PATH}`;
    const feedUrl = `http://127.0.0.1:${port}${FEED_PATH}`;

    const plans = Array.from({ length: workers }, (_, i) => {
      const name = `web-${i + 1}`;
      const streamWorker = i < streamWorkers;
      const url = streamWorker ? streamUrl : feedUrl;
      const argv = [python, ...PYTHON_FLAGS, workerScript, '--name', name, '--url', url];
      return { name, streamWorker, url, argv, cwd: join(root, `worker-${i + 1}`) };
    });
    for (const plan of plans) {
      try {
        await mkdir(plan.cwd);
      } catch (error) {
        throw new Error(`makePythonIncident needs a fresh directory: ${plan.cwd} exists`, { cause: error });
      }
      procs.push(
        startProcess(
          'bash',
          ['--norc', '-c', CORE_SHELL, 'bash', ...plan.argv],
          { cwd: plan.cwd, env: { ...baseEnv, ...FAKE_SECRETS } },
          `worker ${plan.name}`,
        ),
      );
    }

    const ready = await Promise.all(
      procs.map((proc) => proc.waitFor(/^READY \S+ bytes=(\d+) eof=([01])$/m, readyBy)),
    );
    for (const [i, match] of ready.entries()) {
      if (plans[i]!.streamWorker && match[2] === '1') {
        throw new Error(
          `worker ${plans[i]!.name} reached the end of the endless stream after ${match[1]} bytes`,
        );
      }
    }

    const collectBy = Date.now() + COLLECT_TIMEOUT_MS;
    const cores = await Promise.all(
      plans.map(async (plan, i): Promise<PythonWorkerCore> => {
        const proc = procs[i]!;
        const core = {
          name: plan.name,
          pid: proc.pid,
          argv: plan.argv,
          streamWorker: plan.streamWorker,
          url: plan.url,
        };
        if (how === 'gcore') {
          const path = await takeGcore(plan.cwd, proc.pid, collectBy);
          await proc.stop();
          return { ...core, path, signal: 0, via: how };
        }
        proc.kill('SIGABRT');
        const exit = await withDeadline(proc.exited, collectBy, `worker ${plan.name} did not die of SIGABRT`);
        if (exit.signal !== 'SIGABRT') {
          throw new Error(
            `worker ${plan.name} ended with ${describeExit(exit)}, not SIGABRT: ${proc.stderr()}`,
          );
        }
        const path = await collectKernelCore(plan.cwd, proc.pid, support);
        return { ...core, path, signal: constants.signals.SIGABRT, via: how };
      }),
    );

    server.unref();
    let closing: Promise<void> | undefined;
    return {
      cores,
      streamUrl,
      feedUrl,
      python,
      close: () => {
        closing ??= server.stop('SIGTERM');
        return closing;
      },
    };
  } catch (error) {
    await Promise.all([...procs.map((proc) => proc.stop()), server.stop()]);
    throw error;
  }
}

export interface DockerCpOptions {
  /** gzip the tar (`gzip -1`), as `docker cp ... - | gzip` would. */
  gzip?: boolean;
  /** Entry name inside the tar (default: the core's basename, as docker cp uses). */
  name?: string;
}

/**
 * Write what `docker cp <container>:<path> -` emits for a single file: a tar holding
 * it under its basename. Docker's Go archive/tar writes PAX-format headers that,
 * for ordinary names and sizes, need no extended records (whole-second mtime, no
 * atime/ctime, no user/group names): GNU tar --format=pax with those records
 * deleted produces the same shape, and still adds PAX records where docker would
 * (files over 8 GiB, names over 100 bytes).
 */
export async function wrapAsDockerCp(
  corePath: string,
  outPath: string,
  opts: DockerCpOptions = {},
): Promise<string> {
  await wrapManyAsDockerCp([{ path: corePath, name: opts.name }], outPath, { gzip: opts.gzip });
  return outPath;
}

export interface DockerCpManyOptions {
  gzip?: boolean;
  /**
   * Put the entries under this directory, with a directory entry first, which is
   * what `docker cp <container>:/var/crash -` gives (dir 'crash'). Without it the
   * files sit at the top level, like a hand-made `tar -cf - core.1 core.2`.
   */
  dir?: string;
}

/** Several cores in one tar stream: top-level entries in the given order, a `dir` in name order. */
export async function wrapManyAsDockerCp(
  cores: ReadonlyArray<string | { path: string; name?: string | undefined }>,
  outPath: string,
  opts: DockerCpManyOptions = {},
): Promise<string> {
  requireTool('tar');
  if (opts.gzip) requireTool('gzip');
  const entries = cores.map((core) =>
    typeof core === 'string'
      ? { path: core, name: basename(core) }
      : { path: core.path, name: core.name ?? basename(core.path) },
  );
  const duplicate = entries.find((e, i) => entries.findIndex((f) => f.name === e.name) !== i);
  if (duplicate) throw new Error(`wrapManyAsDockerCp: two entries named ${duplicate.name}; give them names`);
  const stage = await mkdtemp(join(dirname(resolve(outPath)), '.docker-cp-'));
  try {
    const top = opts.dir === undefined ? stage : join(stage, opts.dir);
    for (const entry of entries) {
      const staged = join(top, entry.name);
      await mkdir(dirname(staged), { recursive: true });
      // A hard link costs nothing even for a multi-GiB core; copy across filesystems.
      // (Only across filesystems: copying over an existing link would overwrite the original.)
      await link(entry.path, staged).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EXDEV') throw error;
        return copyFile(entry.path, staged);
      });
    }
    const names = opts.dir === undefined ? entries.map((entry) => entry.name) : [opts.dir];
    const tarArgs = [
      '--format=pax',
      '--pax-option=delete=atime,delete=ctime,delete=mtime',
      '--numeric-owner',
      // docker walks a directory in lexical order; top-level names keep the caller's order.
      '--sort=name',
      '-C',
      stage,
      '-cf',
      '-',
      '--',
      ...names,
    ];
    const out = await open(outPath, 'w');
    try {
      if (opts.gzip) {
        const tar = spawn('tar', tarArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
        const gzip = spawn('gzip', ['-1', '-c'], { stdio: [tar.stdout, out.fd, 'pipe'] });
        // gzip has its own copy of the pipe now; ours, never read, would keep tar from closing.
        tar.stdout.destroy();
        await Promise.all([succeeded(tar, 'tar'), succeeded(gzip, 'gzip')]);
      } else {
        await succeeded(spawn('tar', tarArgs, { stdio: ['ignore', out.fd, 'pipe'] }), 'tar');
      }
    } finally {
      await out.close();
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return outPath;
}

/**
 * Copy only the first `keepBytes` of a core: what is left when the disk filled up
 * while the kernel was writing it. Throws if the core is shorter than that.
 */
export async function truncateCopy(corePath: string, outPath: string, keepBytes: number): Promise<string> {
  if (!Number.isSafeInteger(keepBytes) || keepBytes < 0) {
    throw new RangeError(`keepBytes must be a non-negative integer, got ${keepBytes}`);
  }
  const { size } = await stat(corePath);
  if (keepBytes > size) throw new RangeError(`cannot keep ${keepBytes} bytes of ${corePath}: it has ${size}`);
  if (keepBytes === 0) {
    await writeFile(outPath, '');
  } else {
    await pipeline(createReadStream(corePath, { start: 0, end: keepBytes - 1 }), createWriteStream(outPath));
  }
  return outPath;
}

// ---------------------------------------------------------------------------
// Processes

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

interface Proc {
  pid: number;
  exited: Promise<Exit>;
  /** Resolves with the first match of `pattern` in stdout; rejects on exit or at `deadline`. */
  waitFor(pattern: RegExp, deadline: number): Promise<RegExpExecArray>;
  kill(signal: NodeJS.Signals): void;
  /** End it (closing stdin, then `signal`, then SIGKILL after a grace period) and wait. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  stderr(): string;
  /**
   * Stop it from keeping Node alive: a forgotten close() then cannot hang the test
   * run, and the child still exits when Node does (its stdin closes).
   */
  unref(): void;
}

const OUTPUT_CAP = 64 * 1024;

/**
 * Spawn with stdin as a pipe that stays open: the fixture programs exit when it
 * closes, which is what ties their lifetime to ours.
 */
function startProcess(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
  what: string,
): Proc {
  const child: ChildProcess = spawn(command, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const exited = new Promise<Exit>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
    child.once('error', (error) => resolveExit({ code: null, signal: null, error }));
  });
  child.stdin?.on('error', () => {}); // EPIPE when the child is already gone
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout = (stdout + chunk).slice(-OUTPUT_CAP);
    for (const check of waiters) check();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-OUTPUT_CAP);
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
    for (const check of waiters) check();
  });
  const running = () => !gone && child.exitCode === null && child.signalCode === null;

  return {
    pid: child.pid ?? -1,
    exited,
    stderr: () => stderr.trim().slice(-2000),
    kill(signal) {
      if (running()) child.kill(signal);
    },
    unref() {
      child.unref();
      for (const stream of [child.stdin, child.stdout, child.stderr]) {
        (stream as (typeof stream & { unref?: () => void }) | null)?.unref?.();
      }
    },
    waitFor(pattern, deadline) {
      const seconds = Math.round((deadline - Date.now()) / 1000);
      return new Promise((resolveMatch, reject) => {
        const timer = setTimeout(
          () => {
            waiters.delete(check);
            reject(
              new Error(
                `${what} did not print ${pattern} within ${seconds} s; stdout: ${JSON.stringify(stdout.slice(-500))}; stderr: ${stderr.trim().slice(-2000)}`,
              ),
            );
          },
          Math.max(0, deadline - Date.now()),
        );
        const check = () => {
          const match = pattern.exec(stdout);
          if (match !== null || !running()) {
            clearTimeout(timer);
            waiters.delete(check);
          }
          if (match !== null) {
            resolveMatch(match);
          } else if (!running()) {
            void exited.then((exit) =>
              reject(
                new Error(
                  `${what} ${describeExit(exit)} before printing ${pattern}: ${stderr.trim().slice(-2000)}`,
                ),
              ),
            );
          }
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = 'SIGKILL') {
      if (child.pid === undefined) return;
      child.stdin?.end();
      if (running()) child.kill(signal);
      if (signal !== 'SIGKILL') {
        const exit = await Promise.race([exited, sleep(3000).then(() => null)]);
        if (exit === null && running()) child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

function withDeadline<T>(promise: Promise<T>, deadline: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${message} within ${COLLECT_TIMEOUT_MS / 1000} s`)),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function describeExit(exit: Exit): string {
  if (exit.error !== undefined) return `failed to start (${exit.error.message})`;
  return exit.signal === null ? `exited with code ${exit.code}` : `was killed by ${exit.signal}`;
}

function succeeded(child: ChildProcess, what: string): Promise<void> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  return new Promise((resolveDone, reject) => {
    child.once('error', (error) =>
      reject(new Error(`could not run ${what}: ${error.message}`, { cause: error })),
    );
    child.once('close', (code, signal) => {
      if (code === 0) resolveDone();
      else
        reject(
          new Error(
            `${what} ${code === null ? `was killed by ${signal}` : `exited with ${code}`}: ${stderr.trim()}`,
          ),
        );
    });
  });
}

// ---------------------------------------------------------------------------
// Cores

/**
 * The process ran alone in `cwd`, so whatever file the kernel wrote there is its
 * core, whatever core_pattern/core_uses_pid made of the name; it is renamed to
 * `core` so every fixture has the same layout.
 */
async function collectKernelCore(cwd: string, pid: number, support: CoreDumpSupport): Promise<string> {
  const files = (await readdir(cwd, { withFileTypes: true })).filter((entry) => entry.isFile());
  if (files.length !== 1) {
    throw new Error(
      `the kernel wrote ${files.length === 0 ? 'no core' : `${files.length} files`} for pid ${pid} in ${cwd} ` +
        `(${support.reason}); makeCCore(..., { via: 'gcore' }) avoids the kernel`,
    );
  }
  const path = join(cwd, 'core');
  if (files[0]!.name !== 'core') await rename(join(cwd, files[0]!.name), path);
  await assertCore(path);
  return path;
}

async function takeGcore(cwd: string, pid: number, deadline: number): Promise<string> {
  requireTool('gcore');
  const prefix = join(cwd, 'core');
  const result = await runTool('gcore', ['-o', prefix, String(pid)], {
    timeoutMs: Math.max(1000, deadline - Date.now()),
    okCodes: [0, 1],
  });
  const written = `${prefix}.${pid}`;
  try {
    await rename(written, prefix);
  } catch (error) {
    throw new Error(
      `gcore wrote no core for pid ${pid}: ${result.stdout.trim()} ${result.stderr.trim().slice(-2000)}`,
      {
        cause: error,
      },
    );
  }
  await assertCore(prefix);
  return prefix;
}

/** ELF magic and e_type ET_CORE, so a half-written or wrong file fails here, not in a test. */
async function assertCore(path: string): Promise<void> {
  const file = await open(path, 'r');
  try {
    const { bytesRead, buffer } = await file.read(Buffer.alloc(18), 0, 18, 0);
    const isElf = bytesRead === 18 && buffer.readUInt32BE(0) === 0x7f454c46;
    if (!isElf || buffer.readUInt16LE(16) !== 4) throw new Error(`${path} is not an ELF core file`);
  } finally {
    await file.close();
  }
}

/** NT_FILE, the note listing the mapped files (and the one a core cut early loses first). */
export const NT_FILE = 0x46494c45;

/**
 * The file offset of the first note of `type` in a core's PT_NOTE segments, read by the ELF64
 * layout itself (not by the code under test): where to cut a core to lose that note and all after it.
 */
export async function noteOffset(corePath: string, type: number): Promise<number> {
  const bytes = await readFile(corePath);
  const phoff = Number(bytes.readBigUInt64LE(32));
  const phentsize = bytes.readUInt16LE(54);
  const phnum = bytes.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (bytes.readUInt32LE(ph) !== 4) continue; // PT_NOTE
    const start = Number(bytes.readBigUInt64LE(ph + 8));
    const end = start + Number(bytes.readBigUInt64LE(ph + 32));
    const align4 = (n: number) => (n + 3) & ~3;
    for (let at = start; at + 12 <= end; ) {
      const namesz = bytes.readUInt32LE(at);
      const descsz = bytes.readUInt32LE(at + 4);
      if (bytes.readUInt32LE(at + 8) === type) return at;
      at += 12 + align4(namesz) + align4(descsz);
    }
  }
  throw new Error(`${corePath} has no note of type 0x${type.toString(16)}`);
}
