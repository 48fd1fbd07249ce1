import { randomBytes } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/**
 * A cgroup of its own for each evidence script, so that all its processes together are bounded:
 * RLIMIT_AS holds one process, and eight processes of 700 MB each hold 5.6 GB between them.
 *
 * Where it is made (the "home"), the first that works of:
 * - cgroup v2 (`ROOT`, or `ROOT/unified` beside v1 controllers): the home must list `memory` and
 *   `pids` in its cgroup.controllers and have them in cgroup.subtree_control (they are enabled
 *   there if they are not, which the kernel allows only in a cgroup without processes of its own);
 * - cgroup v1: the `memory` and `pids` hierarchies (`ROOT/memory`, `ROOT/pids`, or a directory
 *   whose comma-separated name holds them), each run getting a directory in both.
 * The home is `parent` in each hierarchy (NIGHTSHIFT_SANDBOX_CGROUP), by default the bot's own
 * cgroup there (/proc/self/cgroup), so limits set above the bot still hold its scripts. It must
 * be writable: the bot is root, or was given that cgroup.
 *
 * A run's cgroup gets `memory.max` (v1: memory.limit_in_bytes and memory.memsw.limit_in_bytes,
 * when swap is accounted), no swap on v2, and `pids.max`. When there is no home, the caller does
 * not run the script and says why: `findCgroupHome` returns the reason.
 */

export const CGROUP_ROOT = '/sys/fs/cgroup';

export interface CgroupSetup {
  /** Where the cgroup file systems are mounted. Default /sys/fs/cgroup. */
  root?: string | undefined;
  /**
   * The cgroup (a path such as `/nightshift`, the same in each hierarchy) under which each run's
   * cgroup is made. Default the bot's own cgroup in each hierarchy (NIGHTSHIFT_SANDBOX_CGROUP).
   */
  parent?: string | undefined;
  /** The text of /proc/self/cgroup (tests). Default read from there. */
  selfCgroup?: string | undefined;
}

export type CgroupHome = { version: 2; dir: string } | { version: 1; memoryDir: string; pidsDir: string };

export type CgroupHomeStatus = { ok: true; home: CgroupHome } | { ok: false; reason: string };

export interface CgroupLimits {
  /** All the processes' memory together (anonymous, page cache, tmpfs), in bytes. */
  memoryBytes: number;
  /** Processes and threads in the cgroup at once. */
  maxProcesses: number;
}

/** What the cgroup saw of a run, read before it is removed. */
export interface CgroupReport {
  version: 1 | 2;
  /** The run's cgroup, a path in its hierarchy (v1: the memory one). */
  path: string;
  memoryLimitBytes: number;
  maxProcesses: number;
  /**
   * Most memory the cgroup held at once, in bytes (memory.peak; v1 memory.max_usage_in_bytes);
   * null where the kernel does not say.
   */
  peakMemoryBytes: number | null;
  /** Processes the kernel killed at the memory limit. */
  oomKills: number;
  /** Forks (and clones) refused at the process limit. */
  forkFailures: number;
}

/** A run's cgroup: join it before the script runs, kill what is in it and remove it after. */
export interface ScriptCgroup {
  readonly home: CgroupHome;
  /** Its directories (v2 one, v1 the memory and the pids one). */
  readonly dirs: readonly string[];
  /** Moves a process (and so everything it starts after) into it. */
  join(pid: number): void;
  /** Processes in it now. */
  pids(): number[];
  /** SIGKILLs everything in it until it is empty (or `deadlineMs` passes); true when empty. */
  killAll(deadlineMs?: number): Promise<boolean>;
  report(): CgroupReport;
  /** Kills what is left and removes the directories. */
  remove(): Promise<void>;
}

/** One line of /proc/self/cgroup: `id:controllers:path` (v2: `0::path`). */
function ownPaths(text: string): { v2?: string; v1: Map<string, string> } {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers, path] = m;
    if (id === '0' && controllers === '') v2 = path;
    else for (const c of controllers!.split(',')) if (c) v1.set(c, path!);
  }
  return { ...(v2 !== undefined ? { v2 } : {}), v1 };
}

const read = (path: string) => readFileSync(path, 'utf8');
const words = (path: string) => read(path).trim().split(/\s+/).filter(Boolean);
const why = (error: unknown) => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/** statfs f_type of cgroup v1 and cgroup2 file systems (linux/magic.h). */
const CGROUP_MAGIC = { 1: 0x27e0eb, 2: 0x63677270 } as const;

/** Why `dir` is not a cgroup of that version, or undefined when it is: a plain directory bounds nothing. */
function notCgroup(dir: string, version: 1 | 2): string | undefined {
  try {
    if (statfsSync(dir).type === CGROUP_MAGIC[version]) return undefined;
    return `${dir} is not on a cgroup${version === 2 ? '2' : ''} file system`;
  } catch (error) {
    return `${dir} is not a cgroup (${why(error)})`;
  }
}

const trimmed = (path: string) => path.replace(/(.)\/+$/, '$1');

function writable(dir: string): string | undefined {
  try {
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (error) {
    const uid = process.getuid?.();
    return uid !== 0 && why(error) === 'EACCES'
      ? `${dir} is not writable by the bot (uid ${uid}, EACCES): run it as root, or give it that cgroup`
      : `${dir} is not writable (${why(error)})`;
  }
}

function v2Home(mount: string, parent: string): CgroupHomeStatus {
  const dir = trimmed(join(mount, parent));
  const wrong =
    notCgroup(dir, 2) ?? (existsSync(join(dir, 'cgroup.controllers')) ? undefined : `${dir} is not a cgroup`);
  if (wrong) return { ok: false, reason: `cgroup v2: ${wrong}` };
  const available = words(join(dir, 'cgroup.controllers'));
  const lacking = ['memory', 'pids'].filter((c) => !available.includes(c));
  if (lacking.length > 0)
    return {
      ok: false,
      reason: `cgroup v2 at ${dir} has no ${lacking.join(' or ')} controller (cgroup.controllers: "${available.join(' ')}")`,
    };
  const notWritable = writable(dir);
  if (notWritable) return { ok: false, reason: `cgroup v2: ${notWritable}` };
  const enabled = words(join(dir, 'cgroup.subtree_control'));
  const off = ['memory', 'pids'].filter((c) => !enabled.includes(c));
  if (off.length > 0) {
    try {
      writeFileSync(join(dir, 'cgroup.subtree_control'), off.map((c) => `+${c}`).join(' '));
    } catch (error) {
      return {
        ok: false,
        reason: `cgroup v2: ${off.join(' and ')} not enabled for the children of ${dir}, and enabling them failed (${why(error)}; a cgroup with processes of its own cannot): set NIGHTSHIFT_SANDBOX_CGROUP to a cgroup without processes`,
      };
    }
  }
  return { ok: true, home: { version: 2, dir } };
}

function v1Hierarchy(root: string, controller: string): string | undefined {
  if (existsSync(join(root, controller, 'cgroup.procs'))) return join(root, controller);
  try {
    for (const name of readdirSync(root))
      if (name.split(',').includes(controller) && existsSync(join(root, name, 'cgroup.procs')))
        return join(root, name);
  } catch {
    // no such root
  }
  return undefined;
}

function v1Home(root: string, parent: string | undefined, own: Map<string, string>): CgroupHomeStatus {
  const dirs: Record<string, string> = {};
  for (const controller of ['memory', 'pids']) {
    const mount = v1Hierarchy(root, controller);
    if (!mount) return { ok: false, reason: `no cgroup v1 ${controller} hierarchy under ${root}` };
    const dir = trimmed(join(mount, parent ?? own.get(controller) ?? '/'));
    const wrong =
      notCgroup(dir, 1) ?? (existsSync(join(dir, 'cgroup.procs')) ? undefined : `${dir} is not a cgroup`);
    if (wrong) return { ok: false, reason: `cgroup v1: ${wrong}` };
    const notWritable = writable(dir);
    if (notWritable) return { ok: false, reason: `cgroup v1: ${notWritable}` };
    dirs[controller] = dir;
  }
  return { ok: true, home: { version: 1, memoryDir: dirs.memory!, pidsDir: dirs.pids! } };
}

/** Where run cgroups can be made, or why nowhere. */
export function findCgroupHome(setup: CgroupSetup = {}): CgroupHomeStatus {
  const root = setup.root ?? CGROUP_ROOT;
  if (!existsSync(root)) return { ok: false, reason: `there is no cgroup file system at ${root}` };
  let own: ReturnType<typeof ownPaths>;
  try {
    own = ownPaths(setup.selfCgroup ?? read('/proc/self/cgroup'));
  } catch (error) {
    return { ok: false, reason: `cannot read /proc/self/cgroup (${why(error)})` };
  }
  const reasons: string[] = [];
  const v2Mount = existsSync(join(root, 'cgroup.controllers'))
    ? root
    : existsSync(join(root, 'unified', 'cgroup.controllers'))
      ? join(root, 'unified')
      : undefined;
  if (v2Mount) {
    const v2 = v2Home(v2Mount, setup.parent ?? own.v2 ?? '/');
    if (v2.ok) return v2;
    reasons.push(v2.reason);
  } else reasons.push(`no cgroup v2 hierarchy at ${root}`);
  // Pure v2 mounts nothing else at the root; hybrid and v1 hosts have the v1 hierarchies there.
  if (v2Mount !== root) {
    const v1 = v1Home(root, setup.parent, own.v1);
    if (v1.ok) return v1;
    reasons.push(v1.reason);
  }
  return { ok: false, reason: reasons.join('; ') };
}

/** Where it is, in words: for `nightshift doctor` and logs. */
export function describeHome(home: CgroupHome): string {
  return home.version === 2
    ? `cgroup v2 under ${home.dir}`
    : `cgroup v1 under ${home.memoryDir} and ${home.pidsDir}`;
}

let runs = 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A number from a `key value` file (memory.events, pids.events, memory.oom_control); 0 when absent. */
function keyed(path: string, key: string): number {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(read(path));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function number(path: string): number | null {
  try {
    const value = Number(read(path).trim());
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * Makes a fresh cgroup under `home` with `limits` set. Throws, with the directory removed, when a
 * directory or a limit cannot be written.
 */
export function createScriptCgroup(home: CgroupHome, limits: CgroupLimits): ScriptCgroup {
  const name = `nightshift-run-${process.pid}-${++runs}-${randomBytes(3).toString('hex')}`;
  const dirs =
    home.version === 2 ? [join(home.dir, name)] : [join(home.memoryDir, name), join(home.pidsDir, name)];
  const memoryDir = dirs[0]!;
  const pidsDir = dirs[dirs.length - 1]!;
  const made = makeLimitedDirs(home, dirs, limits);
  const pids = () => pidsIn(dirs);
  const killAll = (deadlineMs = 5000) => killAllIn(home, memoryDir, pids, deadlineMs);
  return {
    home,
    dirs,
    join(pid) {
      for (const dir of dirs) writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    },
    pids,
    killAll,
    report() {
      const v2 = home.version === 2;
      return {
        version: home.version,
        path: memoryDir,
        memoryLimitBytes: limits.memoryBytes,
        maxProcesses: limits.maxProcesses,
        peakMemoryBytes: number(join(memoryDir, v2 ? 'memory.peak' : 'memory.max_usage_in_bytes')),
        oomKills: keyed(join(memoryDir, v2 ? 'memory.events' : 'memory.oom_control'), 'oom_kill'),
        forkFailures: keyed(join(pidsDir, 'pids.events'), 'max'),
      };
    },
    async remove() {
      await killAll();
      await removeDirs(made);
    },
  };
}

/**
 * Makes the run's directories (one for v2; memory's and pids' for v1) and writes its limits into
 * them; returns the directories made. On failure, removes what it made and throws.
 */
function makeLimitedDirs(home: CgroupHome, dirs: string[], limits: CgroupLimits): string[] {
  const memoryDir = dirs[0]!;
  const pidsDir = dirs[dirs.length - 1]!;
  const made: string[] = [];
  try {
    for (const dir of dirs) {
      mkdirSync(dir);
      made.push(dir);
    }
    if (home.version === 2) {
      writeFileSync(join(memoryDir, 'memory.max'), String(limits.memoryBytes));
      if (existsSync(join(memoryDir, 'memory.swap.max')))
        writeFileSync(join(memoryDir, 'memory.swap.max'), '0');
    } else {
      writeFileSync(join(memoryDir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      // Memory and swap together, no more than memory alone: the script cannot swap its way past it.
      if (existsSync(join(memoryDir, 'memory.memsw.limit_in_bytes')))
        writeFileSync(join(memoryDir, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
    }
    writeFileSync(join(pidsDir, 'pids.max'), String(limits.maxProcesses));
  } catch (error) {
    for (const dir of made.reverse())
      try {
        rmdirSync(dir);
      } catch {
        // left for the operator; it holds no process
      }
    throw new Error(`cannot make a cgroup under ${describeHome(home)}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return made;
}

/** The processes in any of the run's directories. */
function pidsIn(dirs: readonly string[]): number[] {
  const seen = new Set<number>();
  for (const dir of dirs)
    try {
      for (const pid of words(join(dir, 'cgroup.procs'))) seen.add(Number(pid));
    } catch {
      // removed already
    }
  return [...seen];
}

/**
 * Kills everything in the cgroup (cgroup.kill where v2 has it, then one by one until none is
 * left); false when some are still there after `deadlineMs`.
 */
async function killAllIn(
  home: CgroupHome,
  memoryDir: string,
  pids: () => number[],
  deadlineMs: number,
): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  if (home.version === 2 && existsSync(join(memoryDir, 'cgroup.kill')))
    try {
      writeFileSync(join(memoryDir, 'cgroup.kill'), '1');
    } catch {
      // killed one by one below
    }
  for (;;) {
    const left = pids();
    if (left.length === 0) return true;
    if (Date.now() > until) return false;
    for (const pid of left)
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    await sleep(10);
  }
}

/** Removes the directories, innermost last made first. */
async function removeDirs(made: readonly string[]): Promise<void> {
  for (const dir of [...made].reverse()) {
    // A killed process stays in cgroup.procs until it is reaped; rmdir says EBUSY until then.
    for (let attempt = 0; ; attempt++) {
      try {
        rmdirSync(dir);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || attempt >= 200) throw error;
        await sleep(25);
      }
    }
  }
}

const RUN_NAME = /^nightshift-run-(\d+)-\d+-[0-9a-f]+$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the run cgroups under `home` that a bot no longer running left behind (killed before it
 * could remove them; its scripts died with it). One that still holds a process is left alone.
 * Returns how many were removed.
 */
export function removeStaleCgroups(home: CgroupHome): number {
  let removed = 0;
  for (const parent of home.version === 2 ? [home.dir] : [home.memoryDir, home.pidsDir]) {
    let names: string[];
    try {
      names = readdirSync(parent);
    } catch {
      continue;
    }
    for (const name of names) {
      const owner = RUN_NAME.exec(name)?.[1];
      if (owner === undefined || alive(Number(owner))) continue;
      try {
        rmdirSync(join(parent, name));
        removed++;
      } catch {
        // something still runs in it
      }
    }
  }
  return removed;
}

/** Makes and removes a cgroup with small limits: whether scripts can be bounded here, and where. */
export async function probeCgroup(setup: CgroupSetup = {}): Promise<CgroupHomeStatus> {
  const found = findCgroupHome(setup);
  if (!found.ok) return found;
  try {
    const cgroup = createScriptCgroup(found.home, { memoryBytes: 64 * 1024 * 1024, maxProcesses: 16 });
    await cgroup.remove();
    return found;
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}
