/**
 * A real container engine for the tests of collection over ssh: Podman's Docker-compatible API
 * (`podman system service`), driven by the real Docker CLI (and by `podman --remote` for hosts
 * that have Podman only), running real containers with runc. A stand-in script would only answer
 * what its author thought the engine answers; this answers what Podman does (`ps` ids of 12
 * characters, `diff` listing the directories it changed, `cp` tars, `system df` columns).
 *
 * Settings that work on the CI machine kind (../shared/ENVIRONMENT.md): the runc runtime (crun
 * refuses the hybrid cgroup layout), the vfs storage driver, the cgroupfs manager, events in a
 * file, and explicit ulimits on every run (the default nofile limit is refused; containers.conf's
 * default_ulimits is not applied through the API). No registry is reachable: the image is
 * imported from a root filesystem holding busybox-static and a crashing program built here with
 * `gcc -static`. Each engine gets its own graphroot, runroot and tmp dir in a temp directory, so
 * it shares nothing with another engine on the machine (another podman's builds, another test
 * file), and stop() removes every container and file it made.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool, runTool } from './reference-tools.ts';
import { until } from './wait.ts';

/** The Docker CLI on this machine kind (no daemon); on PATH elsewhere. */
export const DOCKER_CLI = existsSync('/usr/local/bin/docker') ? '/usr/local/bin/docker' : 'docker';

export const IMAGE = 'localhost/nightshift-test:latest';

/** What every `run` passes: refused defaults made explicit, no network, cores unlimited. */
export const RUN_FLAGS = [
  '--network=none',
  '--ulimit',
  'nofile=1024:1024',
  '--ulimit',
  'nproc=1024:1024',
  '--ulimit',
  'core=-1',
];

/**
 * Allocates `argv[1]` MiB (default 0) filled with bytes that do not compress to nothing, then
 * aborts: the kernel writes `core` in its cwd (core_pattern `core`), inside the container's
 * writable layer.
 */
const CRASH_C = `#include <stdlib.h>
#include <stdint.h>
int main(int argc, char **argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 0;
  uint64_t x = 88172645463325252ULL;
  uint64_t *p = malloc(mib * 1048576 + 8);
  for (size_t i = 0; i < mib * 131072; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; p[i] = x; }
  p[0] = x;
  abort();
}
`;

export interface Podman {
  /** The temp directory holding the engine's storage, socket, configs and image root. */
  dir: string;
  /** The engine's storage (writable layers under `<graphroot>/vfs/dir/` or `<graphroot>/overlay/`). */
  graphroot: string;
  socket: string;
  /** For clients reaching this engine: DOCKER_HOST for docker, CONTAINER_HOST for podman --remote. */
  clientEnv: { DOCKER_HOST: string; CONTAINER_HOST: string };
  /** The real Docker CLI against this engine; rejects on a non-zero exit with its stderr. */
  docker(args: readonly string[], timeoutMs?: number): Promise<string>;
  /**
   * A container whose process crashes in `dir` (writing `dir/core` of about `coreMiB` MiB plus the
   * program), then stays up (`running`) or exits. Resolves with the full id once the core is whole.
   */
  crashingContainer(options: {
    dir: string;
    running: boolean;
    coreMiB?: number;
    name?: string;
    /** Shell text run in the container before the crash (files to write beside the core). */
    prepare?: string;
    /** More arguments for the crashing program, which it ignores: strings its core then holds (URLs). */
    args?: readonly string[];
  }): Promise<string>;
  /** Removes every container, stops the service, deletes the storage. Safe to call twice. */
  stop(): Promise<void>;
}

const unstopped = new Set<() => void>();
let exitHookInstalled = false;

/**
 * Lets the unprivileged ssh user of the tests read the engine's storage and the cores in it (the
 * kernel writes them 0600), as root (or sudo) reads them on a real host. Not through overlay's
 * merged mounts, where a chmod would copy the image's files up into the containers' layers.
 */
export async function openStorageToOthers(podman: Pick<Podman, 'graphroot'>): Promise<void> {
  await runTool('find', [
    podman.graphroot,
    '-xdev',
    '-name',
    'merged',
    '-prune',
    '-o',
    '!',
    '-type',
    'l',
    '-exec',
    'chmod',
    'o+rX',
    '{}',
    '+',
  ]);
}

/** Starts a Podman service of its own on a socket in a temp dir, with the test image imported. */
export interface PodmanOptions {
  /**
   * The storage driver: vfs (a plain directory per layer; the default) or overlay (a container's
   * writable layer is `<graphroot>/overlay/<id>/diff`, as on most Podman hosts).
   */
  driver?: 'vfs' | 'overlay';
}

export async function startPodman(options: PodmanOptions = {}): Promise<Podman> {
  for (const tool of ['podman', 'runc', 'busybox', 'gcc', DOCKER_CLI]) requireTool(tool);
  const dir = await mkdtemp(join(tmpdir(), 'nightshift-podman-'));
  // The ssh test user reaches the socket through this directory.
  await chmod(dir, 0o755);
  const graphroot = join(dir, 'graph');
  const socket = join(dir, 'podman.sock');
  const env = {
    ...process.env,
    CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
    CONTAINERS_CONF: join(dir, 'containers.conf'),
    LC_ALL: 'C',
  };
  await writeFile(
    env.CONTAINERS_STORAGE_CONF,
    `[storage]\ndriver = "${options.driver ?? 'vfs'}"\ngraphroot = "${graphroot}"\nrunroot = "${join(dir, 'run')}"\n`,
  );
  await mkdir(join(dir, 'tmp'));
  await writeFile(
    env.CONTAINERS_CONF,
    [
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(dir, 'events.log')}"`,
      // Podman's own lock and pause files: the default (/run/libpod) is shared by every podman here.
      `tmp_dir = "${join(dir, 'tmp')}"`,
      '',
    ].join('\n'),
  );
  let service: ChildProcess | undefined;
  const clientEnv = { DOCKER_HOST: `unix://${socket}`, CONTAINER_HOST: `unix://${socket}` };
  const podman = (args: readonly string[], timeoutMs = 60_000) => runTool('podman', args, { env, timeoutMs });
  const docker = async (args: readonly string[], timeoutMs = 60_000) =>
    (await runTool(DOCKER_CLI, args, { env: { ...env, ...clientEnv }, timeoutMs })).stdout;
  let stopped = false;
  // When the test process exits without stop(): the engine's processes and mounts go with it.
  const teardownSync = () => {
    if (service?.pid !== undefined && service.exitCode === null) service.kill('SIGKILL');
    killEngineProcesses(dir);
    for (const mount of mountsUnder(dir)) spawnSync('umount', ['-l', mount]);
    rmSync(dir, { recursive: true, force: true });
  };
  unstopped.add(teardownSync);
  installExitHook();
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    unstopped.delete(teardownSync);
    // Through the engine, so runc's processes, conmon and the per-container mounts all go.
    await podman(['rm', '--all', '--force', '--time', '0'], 120_000).catch(() => {});
    if (service && service.exitCode === null) {
      const exited = new Promise((r) => service!.once('exit', r));
      service.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (service.exitCode === null) service.kill('SIGKILL');
    }
    // conmon stays 5 minutes after each `exec` (its exit delay), and a container the engine lost
    // track of would keep running: whatever still names this engine's directory goes now.
    killEngineProcesses(dir);
    for (const mount of mountsUnder(dir)) await runTool('umount', ['-l', mount], { okCodes: [0, 32] });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await buildImage(dir, podman);
    // pdeathsig: the service dies with this process even when it is SIGKILLed.
    service = spawn(
      'setpriv',
      ['--pdeathsig', 'SIGKILL', '--', 'podman', 'system', 'service', '--time=0', `unix://${socket}`],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    service.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    await until(
      'the podman service to answer',
      async () => {
        if (service!.exitCode !== null) throw new Error(`podman system service exited: ${stderr}`);
        return (
          existsSync(socket) &&
          (await docker(['version']).then(
            () => true,
            () => false,
          ))
        );
      },
      30_000,
    );
    // As a docker group would on a real host: the ssh test user may use the engine.
    await chmod(socket, 0o666);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    dir,
    graphroot,
    socket,
    clientEnv,
    docker,
    async crashingContainer({ dir: cwd, running, coreMiB = 0, name, prepare, args = [] }) {
      const extra = args.map((a) => ` '${a.replaceAll("'", "'\\''")}'`).join('');
      const script = `${prepare ? `${prepare}; ` : ''}mkdir -p ${cwd} && cd ${cwd} && /bin/crash ${coreMiB}${extra}; ${running ? 'exec sleep 3600' : 'exit 0'}`;
      const id = (
        await docker([
          'run',
          '-d',
          ...RUN_FLAGS,
          ...(name ? ['--name', name] : []),
          IMAGE,
          'sh',
          '-c',
          script,
        ])
      ).trim();
      // The core is whole once the crashing process is reaped: for a stopped container once it
      // exited; for a running one once `crash` is gone from its processes.
      await until(
        `the crash in container ${id.slice(0, 12)}`,
        async () => {
          if (!running) return (await docker(['inspect', '-f', '{{.State.Status}}', id])).trim() === 'exited';
          const ps = await docker(['exec', id, 'ps', '-o', 'comm']).catch(() => 'crash');
          return !/\bcrash\b/.test(ps);
        },
        60_000,
      );
      return id;
    },
    stop,
  };
}

/** A root filesystem of busybox-static and the crashing program, imported as IMAGE. */
async function buildImage(dir: string, podman: (args: readonly string[]) => Promise<unknown>) {
  const root = join(dir, 'rootfs');
  await mkdir(join(root, 'bin'), { recursive: true });
  for (const d of ['tmp', 'proc', 'sys', 'dev', 'etc']) await mkdir(join(root, d));
  await copyFile(absolute('busybox'), join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'sleep', 'stat', 'ps', 'mkdir', 'cat', 'ls', 'rm', 'head', 'tar'])
    await symlink('busybox', join(root, 'bin', applet));
  await writeFile(join(dir, 'crash.c'), CRASH_C);
  await runTool('gcc', ['-static', '-O1', '-o', join(root, 'bin', 'crash'), join(dir, 'crash.c')]);
  await runTool('tar', ['-C', root, '-cf', join(dir, 'rootfs.tar'), '.']);
  await podman(['import', join(dir, 'rootfs.tar'), IMAGE]);
}

function absolute(tool: string): string {
  for (const d of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'])
    if (existsSync(join(d, tool))) return join(d, tool);
  throw new Error(`${tool} not found`);
}

/** Mount points under `dir`, deepest first (a container's shm, if the engine left one). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((mount) => mount.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * SIGKILL every process whose command line names `dir` (this engine's service and conmons, which
 * carry its storage paths) and everything below them (the containers' processes). By pid, and
 * only these: another engine on the machine names other directories.
 */
function killEngineProcesses(dir: string): void {
  const children = new Map<number, number[]>();
  const named: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
      if (pid !== process.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/`))
        named.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  const doomed = new Set<number>();
  const queue = [...named];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    if (doomed.has(pid)) continue;
    doomed.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  for (const pid of doomed) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const teardown of unstopped) teardown();
  });
}
