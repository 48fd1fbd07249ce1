/**
 * A real OpenSSH server on loopback, for the tests of collection over ssh.
 *
 * The collector talks to hosts with the `ssh2` client; a fake server written with ssh2's own
 * Server class would share its assumptions (algorithms, channel windows, exit-status framing)
 * and so could not catch a mismatch with the sshd that production hosts run. This starts
 * Debian's /usr/sbin/sshd instead, as root (sshd must be root to switch to the test user), on
 * 127.0.0.1 only, with a host key and a client key made per run by ssh-keygen.
 *
 * Each call starts its own sshd with its own config, keys and authorized-keys file, so test
 * files running in parallel processes (node --test --test-concurrency=2) share nothing but the
 * Unix user. The listener runs in the foreground (-D) as our child, under `setpriv --pdeathsig`
 * so that it dies with the test process even when that is SIGKILLed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool, runTool } from './reference-tools.ts';
import { freePort, until } from './wait.ts';

export interface SshdOptions {
  /** Unix user to log in as; created on first use and reused after (default 'nightshift-test'). */
  user?: string;
  /**
   * Directory put first on PATH for commands run over ssh (e.g. holding a `docker` stand-in).
   * The user must be able to enter it: a mkdtemp directory is 0700 root, so chmod it 0755.
   */
  binDir?: string;
  /**
   * Present a host certificate too (sshd's HostCertificate): the host key signed by a CA made for
   * this server with `ssh-keygen -s ca -h`, for these principals (none: any host) and validity
   * (ssh-keygen -V, default forever).
   */
  hostCertificate?: { principals?: string[]; validity?: string };
  /**
   * More variables for commands run over ssh (sshd's SetEnv), e.g. DOCKER_HOST naming a test's
   * container engine. Values without spaces, quotes or backslashes.
   */
  env?: Record<string, string>;
  /** What follows binDir on PATH (default /usr/local/bin:/usr/bin:/bin). */
  basePath?: string;
}

export interface Sshd {
  host: '127.0.0.1';
  port: number;
  user: string;
  /** The client's ed25519 private key (OpenSSH format, no passphrase), made for this run. */
  privateKeyPath: string;
  privateKey: Buffer;
  /** The server's host key as 'ssh-ed25519 AAAA...' (no comment). */
  hostKeyPublicLine: string;
  /** '[127.0.0.1]:PORT ssh-ed25519 AAAA...', the line OpenSSH writes to known_hosts for this server. */
  knownHostsLine: string;
  /** A known_hosts file holding knownHostsLine alone. */
  knownHostsPath: string;
  /** Another ed25519 public key ('ssh-ed25519 AAAA...'), to play a host key that has changed. */
  otherHostKeyLine: string;
  /** With hostCertificate: the CA's public key ('ssh-ed25519 AAAA...'), for @cert-authority lines. */
  certificateAuthorityLine?: string;
  /** With hostCertificate: the certificate sshd presents (the -cert.pub file). */
  hostCertificatePath?: string;
  /** PATH that commands run over ssh see. */
  path: string;
  /** Temporary directory with the config, keys and log; removed by stop(). */
  dir: string;
  /** sshd's log (LogLevel VERBOSE): logins, refusals, and why. */
  logPath: string;
  /** Kill every connection and the listener, and remove the files. Safe to call twice. */
  stop(): Promise<void>;
  /**
   * SIGKILL the per-connection sshd processes (and whatever they run), leaving the listener up:
   * the kernel closes their sockets, so a client mid-transfer sees its connection end early,
   * and new connections are still accepted (as after a dropped link).
   */
  killConnections(): Promise<void>;
}

const HOST = '127.0.0.1';
/** What commands over ssh find after binDir (Debian's default PATH for users, minus /usr/games). */
const BASE_PATH = '/usr/local/bin:/usr/bin:/bin';
const STARTUP_MS = 10_000;

/** What a server leaves behind until stop(): its listener, its temp dir, its authorized-keys file. */
interface Leftovers {
  listener: ChildProcess | undefined;
  paths: string[];
}

/** Servers not yet stopped, so a test process that exits without stop() takes them down with it. */
const unstopped = new Set<Leftovers>();
let exitHookInstalled = false;

/** Start an sshd for `options.user` on a free loopback port; resolves once it speaks SSH. */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const user = options.user ?? 'nightshift-test';
  if (process.getuid?.() !== 0) {
    throw new Error('startSshd needs root: sshd can only switch to the test user when started as root');
  }
  for (const tool of ['sshd', 'ssh-keygen', 'useradd', 'usermod', 'getent', 'runuser']) requireTool(tool);
  // sshd re-executes itself per connection, which needs an absolute path.
  const sshdPath = absolutePath('sshd')!;
  if (!/^[a-z_][a-z0-9_-]*$/.test(user)) throw new Error(`not a usable user name: ${user}`);
  if (options.binDir !== undefined && !/^\/[^\s:"\\]*$/.test(options.binDir)) {
    // It goes into PATH (so no ':') and into sshd_config (so nothing that needs quoting).
    throw new Error(
      `binDir must be an absolute path without spaces, ':', quotes or backslashes: ${options.binDir}`,
    );
  }
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(name) || name === 'PATH' || !/^[^\s"\\]*$/.test(value))
      throw new Error(`not a usable SetEnv variable: ${name}=${value}`);
  }
  const base = options.basePath ?? BASE_PATH;
  const path = options.binDir === undefined ? base : `${options.binDir}:${base}`;

  const dir = await mkdtemp(join(tmpdir(), 'nightshift-sshd-'));
  const leftovers: Leftovers = { listener: undefined, paths: [dir] };
  unstopped.add(leftovers);
  installExitHook();
  let authorizedKeysPath: string | undefined;
  let child: ChildProcess | undefined;
  try {
    const hostKeyPath = join(dir, 'host_ed25519');
    const privateKeyPath = join(dir, 'client_ed25519');
    const [hostKeyPublicLine, , otherHostKeyLine] = await Promise.all([
      keygen(hostKeyPath),
      keygen(privateKeyPath),
      keygen(join(dir, 'other_ed25519')),
    ]);
    const clientPublicLine = (await readFile(`${privateKeyPath}.pub`, 'utf8')).trim();
    let certificate: { ca: string; path: string } | undefined;
    if (options.hostCertificate) {
      const caPath = join(dir, 'host_ca');
      const ca = await keygen(caPath);
      const { principals = [], validity } = options.hostCertificate;
      await runTool('ssh-keygen', [
        '-q',
        '-s',
        caPath,
        '-h',
        '-I',
        'nightshift-test-host',
        ...(principals.length > 0 ? ['-n', principals.join(',')] : []),
        ...(validity ? ['-V', validity] : []),
        `${hostKeyPath}.pub`,
      ]);
      certificate = { ca, path: `${hostKeyPath}-cert.pub` };
    }

    const account = await ensureUser(user);
    // One authorized-keys file per server, in ~/.ssh so StrictModes stays on: a shared
    // ~/.ssh/authorized_keys would be rewritten under a server running in another test process.
    const sshDir = join(account.home, '.ssh');
    await mkdir(sshDir, { recursive: true });
    await chown(sshDir, account.uid, account.gid);
    await chmod(sshDir, 0o700);
    authorizedKeysPath = join(sshDir, `authorized_keys.nightshift-${randomBytes(6).toString('hex')}`);
    leftovers.paths.push(authorizedKeysPath);
    await writeFile(authorizedKeysPath, `${clientPublicLine}\n`, { mode: 0o600 });
    await chown(authorizedKeysPath, account.uid, account.gid);
    await chmod(authorizedKeysPath, 0o600);

    if (options.binDir !== undefined) await checkUserCanEnter(user, options.binDir);
    // The privilege-separation directory; sshd refuses to start without it.
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const penalties = supportsPerSourcePenalties(sshdPath);

    const configPath = join(dir, 'sshd_config');
    const logPath = join(dir, 'sshd.log');
    const pidPath = join(dir, 'sshd.pid');
    let port = 0;
    // A port found free can be taken before sshd binds it; then try another.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      await writeFile(
        configPath,
        sshdConfig({
          port,
          user,
          hostKeyPath,
          pidPath,
          authorizedKeysPath,
          path,
          env: options.env ?? {},
          penalties,
          hostCertificatePath: certificate?.path,
        }),
      );
      await writeFile(logPath, '');
      child = spawnSshd(sshdPath, configPath, logPath);
      leftovers.listener = child;
      const failure = await waitUntilListening(child, port, logPath);
      if (failure === null) break;
      child = undefined;
      if (attempt < 3 && /Bind to port \d+ .* failed|Cannot bind any address/.test(failure)) continue;
      throw new Error(`sshd did not start: ${failure}`);
    }

    const knownHostsLine = `[${HOST}]:${port} ${hostKeyPublicLine}`;
    const knownHostsPath = join(dir, 'known_hosts');
    await writeFile(knownHostsPath, `${knownHostsLine}\n`);
    const listener = child;
    const keysPath = authorizedKeysPath;
    let stopped = false;

    return {
      host: HOST,
      port,
      user,
      privateKeyPath,
      privateKey: await readFile(privateKeyPath),
      hostKeyPublicLine,
      knownHostsLine,
      knownHostsPath,
      otherHostKeyLine,
      ...(certificate
        ? { certificateAuthorityLine: certificate.ca, hostCertificatePath: certificate.path }
        : {}),
      path,
      dir,
      logPath,
      killConnections: () => killDescendants(listener.pid!),
      async stop() {
        if (stopped) return;
        stopped = true;
        await killDescendants(listener.pid!);
        await killAndWait(listener);
        await rm(keysPath, { force: true });
        await rm(dir, { recursive: true, force: true });
        unstopped.delete(leftovers);
      },
    };
  } catch (error) {
    if (child !== undefined) await killAndWait(child);
    if (authorizedKeysPath !== undefined) await rm(authorizedKeysPath, { force: true });
    await rm(dir, { recursive: true, force: true });
    unstopped.delete(leftovers);
    throw error;
  }
}

interface ConfigValues {
  port: number;
  user: string;
  hostKeyPath: string;
  pidPath: string;
  authorizedKeysPath: string;
  path: string;
  env: Record<string, string>;
  penalties: boolean;
  hostCertificatePath: string | undefined;
}

/**
 * The whole config (no Include of /etc/ssh/sshd_config.d, so the machine's settings cannot leak in).
 * SetEnv rather than PermitUserEnvironment: it is per server, where ~/.ssh/environment would be
 * shared by every server for the same user, and sshd applies it after its own default PATH.
 */
function sshdConfig(c: ConfigValues): string {
  return [
    `ListenAddress ${HOST}`,
    `Port ${c.port}`,
    'AddressFamily inet',
    `HostKey ${c.hostKeyPath}`,
    ...(c.hostCertificatePath ? [`HostCertificate ${c.hostCertificatePath}`] : []),
    `PidFile ${c.pidPath}`,
    `AuthorizedKeysFile ${c.authorizedKeysPath}`,
    `AllowUsers ${c.user}`,
    'PermitRootLogin no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes yes',
    'UseDNS no',
    'LogLevel VERBOSE',
    'PrintMotd no',
    'PrintLastLog no',
    'X11Forwarding no',
    // Tests open many connections and many channels per connection at once.
    'MaxStartups 100',
    'MaxSessions 50',
    'LoginGraceTime 30',
    `SetEnv ${Object.entries({ PATH: c.path, ...c.env })
      .map(([name, value]) => `${name}=${value}`)
      .join(' ')}`,
    'Subsystem sftp internal-sftp',
    // OpenSSH 9.8+ refuses a source after crashes and unauthenticated connections (our readiness
    // probes, killConnections); the option does not exist in older versions, which reject it.
    ...(c.penalties ? ['PerSourcePenalties no'] : []),
    '',
  ].join('\n');
}

function spawnSshd(sshdPath: string, configPath: string, logPath: string): ChildProcess {
  const args = [sshdPath, '-D', '-f', configPath, '-E', logPath];
  // pdeathsig kills the listener if this process dies without running its exit hook (SIGKILL, OOM).
  const setpriv = absolutePath('setpriv');
  const child =
    setpriv === null
      ? spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(setpriv, ['--pdeathsig', 'SIGKILL', '--', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.setEncoding('utf8');
  return child;
}

/** A test that forgets stop() (or throws before it) must not leave sshd running or files behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const { listener, paths } of unstopped) {
      if (listener?.pid !== undefined && listener.exitCode === null && listener.signalCode === null) {
        for (const pid of descendants(listener.pid)) tryKill(pid);
        tryKill(listener.pid);
      }
      for (const path of paths) rmSync(path, { recursive: true, force: true });
    }
  });
}

/**
 * Resolves to null once `port` answers with an SSH banner, or to a description of why sshd
 * exited (its stderr and log) if it exits first; on a timeout it kills sshd and says so.
 */
async function waitUntilListening(
  child: ChildProcess,
  port: number,
  logPath: string,
): Promise<string | null> {
  let stderr = '';
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  let exit: string | null = null;
  child.once('exit', (code, signal) => {
    exit = code === null ? `killed by ${signal}` : `exited with ${code}`;
  });
  child.once('error', (error) => {
    exit = `could not be spawned: ${error.message}`;
  });
  const describe = async (why: string) => {
    const log = await readFile(logPath, 'utf8').catch(() => '');
    return `${why}\n${stderr.trim()}\n${log.trim().slice(-2000)}`.trim();
  };
  try {
    await until(
      `sshd to listen on ${HOST}:${port}`,
      async () => exit !== null || (await answersSsh(port)),
      STARTUP_MS,
    );
  } catch {
    await killAndWait(child);
    return describe(`sshd did not answer on ${HOST}:${port} within ${STARTUP_MS} ms`);
  }
  if (exit !== null) return describe(`sshd ${exit}`);
  return null;
}

/** Whether something on `port` sends an SSH identification string (so it is our sshd, ready). */
function answersSsh(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (data: Buffer) => done(data.toString('latin1').startsWith('SSH-2.0-')));
  });
}

/** Make an ed25519 key pair at `path` / `path`.pub; returns the public key as 'ssh-ed25519 AAAA...'. */
async function keygen(path: string): Promise<string> {
  await runTool('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'nightshift-test', '-f', path]);
  const [type, blob] = (await readFile(`${path}.pub`, 'utf8')).trim().split(/\s+/);
  if (type !== 'ssh-ed25519' || blob === undefined)
    throw new Error(`ssh-keygen wrote an unexpected ${path}.pub`);
  return `${type} ${blob}`;
}

interface Account {
  uid: number;
  gid: number;
  home: string;
}

/**
 * Create `user` if missing and make sure sshd will let it in. `useradd -m` leaves the password
 * field '!' (locked), and sshd without PAM refuses locked accounts even for key logins; '*'
 * means "no password" without "locked". Test processes may race to do this, and useradd and
 * usermod fail while another holds /etc/passwd's lock, so each step is retried after re-checking.
 */
async function ensureUser(user: string): Promise<Account> {
  for (let attempt = 1; ; attempt++) {
    try {
      if (getent('passwd', user) === null) {
        await runTool('useradd', ['-m', '-s', '/bin/sh', user]);
      }
      const shadow = getent('shadow', user);
      if (shadow === null) throw new Error(`${user} has no /etc/shadow entry`);
      if (shadow.split(':')[1]!.startsWith('!')) await runTool('usermod', ['-p', '*', user]);
      const fields = getent('passwd', user)?.split(':');
      if (fields === undefined) throw new Error(`${user} vanished from /etc/passwd`);
      return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5]! };
    } catch (error) {
      if (attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100));
    }
  }
}

function getent(database: string, key: string): string | null {
  const result = spawnSync('getent', [database, key], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

/** sshd would run commands with binDir on PATH and silently skip it if the user cannot enter it. */
async function checkUserCanEnter(user: string, dir: string): Promise<void> {
  const result = spawnSync('runuser', [
    '-u',
    user,
    '--',
    'test',
    '-d',
    dir,
    '-a',
    '-x',
    dir,
    '-a',
    '-r',
    dir,
  ]);
  if (result.status !== 0) {
    throw new Error(`${user} cannot enter binDir ${dir} (is it, or a parent, mode 0700?)`);
  }
}

/** OpenSSH 9.8 added PerSourcePenalties (on by default). `sshd -V` prints e.g. 'OpenSSH_9.2p1 ...'. */
function supportsPerSourcePenalties(sshdPath: string): boolean {
  const { stdout, stderr } = spawnSync(sshdPath, ['-V'], { encoding: 'utf8' });
  const match = /OpenSSH_(\d+)\.(\d+)/.exec(`${stderr}${stdout}`);
  if (match === null) return false;
  const major = Number(match[1]);
  return major > 9 || (major === 9 && Number(match[2]) >= 8);
}

function absolutePath(tool: string): string | null {
  const result = spawnSync('which', [tool], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

/**
 * Every live process below `root`: on OpenSSH 9.2 one privileged monitor per connection
 * ("sshd: user [priv]"), its unprivileged child ("sshd: user@notty"), and the commands that runs.
 */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat === null || stat.state === 'Z') continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(Number(entry));
    children.set(stat.ppid, list);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const pid of children.get(queue.shift()!) ?? []) {
      found.push(pid);
      queue.push(pid);
    }
  }
  return found;
}

/** State and parent from /proc/PID/stat; the command name may contain spaces and ')', so parse after the last ')'. */
function readStat(pid: number): { state: string; ppid: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const [state, ppid] = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: state!, ppid: Number(ppid) };
  } catch {
    return null; // gone already
  }
}

/** Gone, or a zombie nobody reaps (PID 1 here need not be a real init). */
function isGone(pid: number): boolean {
  const stat = readStat(pid);
  return stat === null || stat.state === 'Z';
}

async function killDescendants(root: number): Promise<void> {
  const pids = descendants(root);
  for (const pid of pids) tryKill(pid);
  await until(`connections of sshd ${root} to die`, () => pids.every(isGone), 5_000);
}

function tryKill(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM (sshd removes its pid file and exits), SIGKILL after 3 s; resolves once it has exited. */
async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}
