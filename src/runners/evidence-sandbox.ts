import { execFile, spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
} from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { CodedError, ErrorCode } from '../errors.ts';
import {
  type CgroupReport,
  type CgroupSetup,
  createScriptCgroup,
  findCgroupHome,
  type ScriptCgroup,
} from './cgroup.ts';

/**
 * Runs an approved script over an incident's evidence in a bubblewrap (`bwrap`) sandbox:
 *
 * - a fresh tmpfs of a fixed size at /work (also HOME and the working directory), gone when the
 *   sandbox ends, so a script cannot fill the host's disk;
 * - the incident's evidence directory read-only at /evidence;
 * - the rest of / read-only, with /tmp, /run, /home, /root and the bot's own data (the `hide`
 *   paths) replaced by empty directories, a fresh /proc and a minimal /dev (read-only, with a
 *   small tmpfs at /dev/shm);
 * - no network (`--unshare-net`: only a loopback of its own), its own pid, ipc and uts
 *   namespaces, a new session, every capability dropped, killed with the bot (`--die-with-parent`);
 * - the environment cleared to PATH, HOME=/work and LANG=C.UTF-8;
 * - an address-space limit, a file-size limit and a process-count limit (prlimit), a wall-time
 *   limit (the process group is killed), and an output cap on stdout and stderr together
 *   (stopped when it is reached).
 *
 * All the script's processes together are held by a cgroup of the run's own (runners/cgroup.ts):
 * `totalMemoryBytes` of memory (anonymous, page cache, its tmpfs files) and `maxProcesses`
 * processes and threads at once. The sandbox's first process is moved into it before it starts
 * bwrap, so nothing of the script ever runs outside it; at the end everything left in it is
 * killed and it is removed. Where no such cgroup can be made, the script is not run and the error
 * says why.
 *
 * The user's limit on processes is RLIMIT_NPROC, which the kernel counts per real user across
 * the system and does not enforce for root at all. It is set to the tasks that user already has
 * plus `maxProcesses`; a bot running as root should still give the sandbox a user of its own
 * (`runAs`, from NIGHTSHIFT_SANDBOX_USER): a script that escapes bwrap would be root. That user
 * must be able to pass through the directories above `evidenceDir` and read what is in it
 * (runners/sandbox-user.ts shares it); `hide` paths it cannot reach are left as they are, since
 * it cannot read them anyway.
 *
 * The script is run by /bin/sh -c. Without bwrap (or prlimit) nothing runs: a missing sandbox is
 * an error, never a reason to run unsandboxed.
 */

export interface SandboxOptions {
  /** The exact approved script, run by `/bin/sh -c`. */
  script: string;
  /** Host directory bound read-only at /evidence. */
  evidenceDir: string;
  /** Wall time, in milliseconds. Default 60,000. */
  timeoutMs?: number;
  /** Address-space limit (RLIMIT_AS), in bytes. Default 1 GiB. */
  memoryBytes?: number;
  /** Largest file the script may write (RLIMIT_FSIZE), in bytes. Default 256 MiB. */
  fileBytes?: number;
  /** Size of the tmpfs at /work, in bytes: all the script may write there. Default 64 MiB. */
  workBytes?: number;
  /**
   * Processes (and threads) the script may have at once (its cgroup's pids.max), and add to its
   * user's (RLIMIT_NPROC over what it has). Default 128 (NIGHTSHIFT_SANDBOX_PROCESSES).
   */
  maxProcesses?: number;
  /**
   * Memory of all the script's processes together (its cgroup's memory limit), in bytes. Default
   * 1 GiB (NIGHTSHIFT_SANDBOX_MEMORY_MIB).
   */
  totalMemoryBytes?: number;
  /**
   * Where the run's cgroup is made (NIGHTSHIFT_SANDBOX_CGROUP; see runners/cgroup.ts). Default
   * under the bot's own cgroup.
   */
  cgroup?: CgroupSetup;
  /**
   * Run the sandbox as this user and primary group (no supplementary groups) instead of the bot's
   * own; the bot must be root to. Default: the bot's own user (NIGHTSHIFT_SANDBOX_USER sets it).
   */
  runAs?: { uid: number; gid: number };
  /** stdout and stderr together, in bytes; the script is stopped past it. Default 1 MiB. */
  maxOutputBytes?: number;
  /** Host paths the script must not see (the bot's data, its keys): an empty directory or file in their place. */
  hide?: readonly string[];
  /** The PATH searched for bwrap and prlimit. Default the bot's own PATH. */
  searchPath?: string;
}

/** The limits the configuration sets (NIGHTSHIFT_SANDBOX_MEMORY_MIB, _PROCESSES, _CGROUP). */
export type SandboxLimits = Pick<SandboxOptions, 'totalMemoryBytes' | 'maxProcesses' | 'cgroup'>;

export interface SandboxResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** The output cap was reached and the script stopped. */
  truncated: boolean;
  /** Bytes of stdout and stderr produced (up to the cap and the chunk that crossed it). */
  outputBytes: number;
  durationMs: number;
  /** What the run's cgroup saw: its limits, its peak memory, OOM kills and refused forks. */
  cgroup: CgroupReport;
}

export const SANDBOX_DEFAULTS = {
  timeoutMs: 60_000,
  memoryBytes: 1024 * 1024 * 1024,
  fileBytes: 256 * 1024 * 1024,
  workBytes: 64 * 1024 * 1024,
  maxProcesses: 128,
  totalMemoryBytes: 1024 * 1024 * 1024,
  maxOutputBytes: 1024 * 1024,
};

/** Size of the sandbox's /dev/shm, in bytes. */
const SHM_BYTES = 16 * 1024 * 1024;

/** Tasks (processes and threads) whose real user is `uid`: what RLIMIT_NPROC counts. */
export function tasksOfUser(uid: number): number {
  let count = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) !== uid) continue;
      count += Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 1);
    } catch {
      // gone already
    }
  }
  return count;
}

const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Top-level directories the sandbox makes itself, or never shows. */
const NOT_BOUND = new Set([
  'proc',
  'dev',
  'sys',
  'tmp',
  'run',
  'home',
  'root',
  'work',
  'evidence',
  'lost+found',
]);
const EMPTIED = ['/tmp', '/var/tmp', '/run', '/var/run', '/home', '/root', '/mnt', '/media'];

/** The executable's full path on `searchPath`, if there is one. */
export function findExecutable(name: string, searchPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** bwrap's arguments for a root made of the host's top-level entries, read-only. */
export function sandboxArgs(options: {
  evidenceDir: string;
  /** Size of the tmpfs at /work, in bytes. */
  workBytes: number;
  hide: readonly string[];
  /** Size of the sandbox's /tmp, in bytes. */
  tmpBytes: number;
}): string[] {
  const args: string[] = [];
  for (const entry of readdirSync('/', { withFileTypes: true })) {
    if (NOT_BOUND.has(entry.name)) continue;
    const path = `/${entry.name}`;
    if (entry.isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
    else if (entry.isDirectory()) args.push('--ro-bind', path, path);
  }
  // /tmp is the one writable place besides /work, and small.
  args.push('--proc', '/proc', '--dev', '/dev', '--size', String(options.tmpBytes), '--tmpfs', '/tmp');
  // /dev is itself a tmpfs of half the memory: read-only, with a small /dev/shm.
  args.push('--size', String(SHM_BYTES), '--tmpfs', '/dev/shm');
  args.push('--dir', '/run', '--dir', '/home', '--dir', '/root');
  const emptied: string[] = [];
  const hidden = [...EMPTIED, ...options.hide.map((p) => resolve(p))];
  // A path inside another hidden one (the evidence directory inside the data directory, as by
  // default) is hidden with it: a tmpfs over its parent would leave no mount point to remount.
  const outermost = hidden.filter((path) => !hidden.some((other) => path.startsWith(`${other}/`)));
  for (const path of new Set(outermost)) {
    if (['/tmp', '/run', '/home', '/root'].includes(path)) continue;
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(path);
    } catch {
      continue;
    }
    // A symlink (/var/run → /run) resolves to something already handled.
    if (path !== '/var/run' && stat.isDirectory()) {
      args.push('--tmpfs', path);
      emptied.push(path);
    } else if (stat.isFile()) args.push('--ro-bind', '/dev/null', path);
  }
  args.push('--ro-bind', resolve(options.evidenceDir), '/evidence');
  args.push('--size', String(options.workBytes), '--tmpfs', '/work');
  for (const path of ['/', '/dev', ...emptied]) args.push('--remount-ro', path);
  args.push(
    '--unshare-net',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--hostname',
    'sandbox',
    '--die-with-parent',
    '--new-session',
    '--cap-drop',
    'ALL',
    '--clearenv',
    '--setenv',
    'PATH',
    SANDBOX_PATH,
    '--setenv',
    'HOME',
    '/work',
    '--setenv',
    'LANG',
    'C.UTF-8',
    '--chdir',
    '/work',
  );
  return args;
}

/**
 * The paths `runAs` can reach. bwrap resolves the paths it mounts over as the user it runs as, so
 * it fails on a key file in a 0700 directory; that user cannot read such a file anyway.
 */
async function reachableBy(paths: readonly string[], runAs: { uid: number; gid: number }): Promise<string[]> {
  if (paths.length === 0) return [];
  const absolute = paths.map((p) => resolve(p));
  const seen = await new Promise<string>((done, fail) => {
    execFile(
      '/bin/sh',
      ['-c', 'for p do if [ -e "$p" ] || [ -L "$p" ]; then printf "%s\\0" "$p"; fi; done', 'sh', ...absolute],
      { uid: runAs.uid, gid: runAs.gid, env: { PATH: SANDBOX_PATH }, encoding: 'utf8' },
      (error, stdout) => (error ? fail(error) : done(stdout)),
    );
  }).catch((error: Error) => {
    throw new CodedError(
      ErrorCode.SandboxUnavailable,
      `cannot start a process as uid ${runAs.uid}, so the script was not run: ${error.message}`,
    );
  });
  const reachable = new Set(seen.split('\0'));
  return absolute.filter((p) => reachable.has(p));
}

export async function runInSandbox(options: SandboxOptions): Promise<SandboxResult> {
  const limits = sandboxLimits(options);
  const { bwrap, prlimit } = sandboxTools(options);
  const home = findCgroupHome(options.cgroup);
  if (!home.ok)
    throw new CodedError(
      ErrorCode.SandboxUnavailable,
      `no cgroup can bound the script's memory and processes, so the script was not run: ${home.reason}`,
    );
  const uid = options.runAs?.uid ?? process.getuid?.() ?? 0;
  const hide = options.runAs ? await reachableBy(options.hide ?? [], options.runAs) : (options.hide ?? []);
  const args = [
    // The first process waits for a line on stdin: the bot moves it into the run's cgroup first.
    '-c',
    'read -r go && [ "$go" = go ] && exec "$@" </dev/null; exit 125',
    'nightshift-sandbox',
    prlimit,
    `--as=${limits.memoryBytes}`,
    `--fsize=${limits.fileBytes}`,
    `--nproc=${tasksOfUser(uid) + limits.maxProcesses}`,
    '--core=0',
    '--',
    bwrap,
    ...sandboxArgs({
      evidenceDir: options.evidenceDir,
      workBytes: limits.workBytes,
      hide,
      tmpBytes: Math.min(limits.fileBytes, 64 * 1024 * 1024),
    }),
    '--',
    '/bin/sh',
    '-c',
    options.script,
  ];
  let cgroup: ScriptCgroup;
  try {
    cgroup = createScriptCgroup(home.home, {
      memoryBytes: limits.totalMemoryBytes,
      maxProcesses: limits.maxProcesses,
    });
  } catch (error) {
    throw new CodedError(
      ErrorCode.SandboxUnavailable,
      `no cgroup can bound the script's memory and processes, so the script was not run: ${(error as Error).message}`,
      { cause: error },
    );
  }
  try {
    return await superviseSandbox(args, options.runAs, limits, cgroup);
  } finally {
    // A process stuck in the kernel past the deadline keeps the cgroup, and its limits with it.
    await cgroup.remove().catch(() => undefined);
  }
}

type Limits = typeof SANDBOX_DEFAULTS;

/** The options' limits, each its default where it is not given. */
function sandboxLimits(options: SandboxOptions): Limits {
  const limits = { ...SANDBOX_DEFAULTS };
  for (const key of Object.keys(limits) as Array<keyof Limits>) limits[key] = options[key] ?? limits[key];
  return limits;
}

/** bwrap and prlimit, and the evidence directory: without any of them, nothing runs. */
function sandboxTools(options: SandboxOptions): { bwrap: string; prlimit: string } {
  const bwrap = findExecutable('bwrap', options.searchPath);
  const prlimit = findExecutable('prlimit', options.searchPath);
  if (!bwrap)
    throw new CodedError(
      ErrorCode.SandboxUnavailable,
      'bubblewrap (bwrap) is not installed, so the script was not run (apt-get install bubblewrap)',
    );
  if (!prlimit)
    throw new CodedError(
      ErrorCode.SandboxUnavailable,
      'prlimit (util-linux) is not installed, so the script was not run: it sets the memory limit',
    );
  if (!existsSync(options.evidenceDir) || !statSync(options.evidenceDir).isDirectory())
    throw new CodedError(
      ErrorCode.SandboxUnavailable,
      `the evidence directory ${options.evidenceDir} does not exist, so the script was not run`,
    );
  return { bwrap, prlimit };
}

/**
 * Starts the wrapper, moves it into the run's cgroup, lets it go, and gathers its output up to
 * the cap and its exit; the time limit and the cap kill its process group and its cgroup.
 */
function superviseSandbox(
  args: string[],
  runAs: SandboxOptions['runAs'],
  limits: Limits,
  cgroup: ScriptCgroup,
): Promise<SandboxResult> {
  return new Promise<SandboxResult>((done, fail) => {
    const started = performance.now();
    // /bin/sh waits, is moved into the cgroup, then execs prlimit, which sets the limits on
    // itself and execs bwrap: one process, the leader of its group.
    const child = spawn('/bin/sh', args, {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {},
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    let timedOut = false;
    const kill = () => killSandbox(child.pid, cgroup);
    const output = new CappedOutput(limits.maxOutputBytes, kill);
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, limits.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => output.take(output.stdout, chunk));
    child.stderr.on('data', (chunk: Buffer) => output.take(output.stderr, chunk));
    child.stdin.on('error', () => {
      // the wrapper died before reading its line; its exit is reported below
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(new CodedError(ErrorCode.SandboxUnavailable, `cannot start the sandbox: ${error.message}`));
    });
    if (child.pid !== undefined) {
      try {
        cgroup.join(child.pid);
      } catch (error) {
        clearTimeout(timer);
        kill();
        fail(
          new CodedError(
            ErrorCode.SandboxUnavailable,
            `cannot move the sandbox into its cgroup, so the script was not run: ${(error as Error).message}`,
            { cause: error },
          ),
        );
        return;
      }
      child.stdin.end('go\n');
    }
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      // Nothing of the script outlives the run: what is still in the cgroup is killed first.
      void cgroup.killAll().then(() =>
        done({
          exitCode: code,
          signal,
          ...output.text(),
          timedOut,
          truncated: output.truncated,
          outputBytes: output.size,
          durationMs: Math.round(performance.now() - started),
          cgroup: cgroup.report(),
        }),
      );
    });
  });
}

/** Kills the sandbox's process group, and what left it (setsid, a daemon) but is still in the cgroup. */
function killSandbox(pid: number | undefined, cgroup: ScriptCgroup): void {
  try {
    if (pid) process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
  void cgroup.killAll();
}

/** stdout and stderr kept together up to `maxBytes`; the chunk that crosses it is cut and `onFull` called. */
class CappedOutput {
  readonly stdout: Buffer[] = [];
  readonly stderr: Buffer[] = [];
  size = 0;
  truncated = false;
  readonly #maxBytes: number;
  readonly #onFull: () => void;

  constructor(maxBytes: number, onFull: () => void) {
    this.#maxBytes = maxBytes;
    this.#onFull = onFull;
  }

  take(into: Buffer[], chunk: Buffer): void {
    if (this.truncated) return;
    const room = this.#maxBytes - this.size;
    if (chunk.length > room) {
      into.push(chunk.subarray(0, room));
      this.size = this.#maxBytes;
      this.truncated = true;
      this.#onFull();
      return;
    }
    into.push(chunk);
    this.size += chunk.length;
  }

  text(): { stdout: string; stderr: string } {
    return {
      stdout: Buffer.concat(this.stdout).toString('utf8'),
      stderr: Buffer.concat(this.stderr).toString('utf8'),
    };
  }
}
