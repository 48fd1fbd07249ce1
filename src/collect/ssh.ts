import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { Clock } from '../clock.ts';
import type { Host, HostsFile } from '../config/hosts.ts';
import { CodedError, ErrorCode } from '../errors.ts';
import type { Logger } from '../log.ts';
import { fetchHostCertificate } from './host-certificate.ts';
import { type KnownHostEntry, verifyHostCertificate, verifyHostKey } from './known-hosts.ts';
import {
  type ExecResult,
  gentle,
  type RemoteCommand,
  type RemoteHost,
  type RemoteStream,
} from './transport.ts';

/**
 * SSH to the hosts in the hosts file with ssh2: host keys pinned (an unknown or changed key
 * refuses), one connection per host reused for every command of an incident, at most
 * `maxSessions` commands at once per host, every command under nice/ionice and a timeout, its
 * output capped.
 */

class Semaphore {
  private available: number;
  private readonly waiting: Array<() => void> = [];
  constructor(count: number) {
    this.available = count;
  }
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.available > 0) this.available--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.available++;
    }
  }
}

/** How a remote command ended, as the channel told before it closed. */
interface Ending {
  /** The exit status; null when the host sent none (killed by a signal, or no word at all). */
  exitCode: number | null;
  /** The signal that killed it ('SIGKILL'), when the host sent exit-signal instead of exit-status. */
  signal?: string;
}

/**
 * Opens an exec channel and starts listening for how the command ends in ssh2's callback itself,
 * before anything else can run. ssh2 handles every packet of one socket read in a row, emitting
 * 'exit' as it parses the exit-status; a listener added after an `await` (a microtask later) is
 * too late when the exec reply, the output, the exit status and the close came in the same read.
 * That is the case for a quick command whenever the bot is slow to read (a loaded machine, other
 * transfers decompressing): the output waits in the channel's buffers, an event does not, and the
 * command looked as if its connection had dropped.
 */
function openExec(
  client: Client,
  host: Host,
  command: string,
): Promise<{ channel: ClientChannel; ended: Promise<Ending> }> {
  return new Promise((resolve, reject) =>
    client.exec(command, (error, channel) => {
      if (error) {
        reject(new CodedError(ErrorCode.SshFailed, `${host.name}: ${error.message}`, { cause: error }));
        return;
      }
      const ended = new Promise<Ending>((settle) => {
        let ending: Ending = { exitCode: null };
        channel.on('exit', (code: number | null, signal?: string) => {
          ending = signal === undefined ? { exitCode: code } : { exitCode: code, signal };
        });
        channel.on('close', () => settle(ending));
      });
      resolve({ channel, ended });
    }),
  );
}

/** A key that cannot be read is this host's connection failing: said once, as a refusal is. */
function readPrivateKey(host: Host, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new CodedError(
      ErrorCode.SshFailed,
      `cannot connect to ${host.name}: cannot read its SSH key ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      { cause: error },
    );
  }
}

/** A channel to the host's SSH port through its jump host. */
function forwardTo(via: Client, host: Host): Promise<ClientChannel> {
  return new Promise((resolve, reject) =>
    via.forwardOut('127.0.0.1', 0, host.address, host.port, (error, stream) =>
      error ? reject(error) : resolve(stream),
    ),
  );
}

export interface SshOptions {
  hosts: HostsFile;
  knownHosts: KnownHostEntry[];
  log: Logger;
  readyTimeoutMs?: number;
  /** The clock host certificates are checked against. */
  now: Clock;
}

export class SshConnections {
  private readonly options: SshOptions;
  private readonly clients = new Map<string, Promise<Client>>();
  private readonly limits = new Map<string, Semaphore>();

  constructor(options: SshOptions) {
    this.options = options;
  }

  host(name: string): RemoteHost {
    const host = this.options.hosts.hosts.find((h) => h.name === name);
    if (!host) throw new CodedError(ErrorCode.HostUnknown, `no host named "${name}" in the hosts file`);
    let limit = this.limits.get(name);
    if (!limit) {
      limit = new Semaphore(host.maxSessions);
      this.limits.set(name, limit);
    }
    const semaphore = limit;
    return {
      name,
      exec: (command) => semaphore.run(() => this.exec(host, command)),
      // A transfer holds its session until its stream ends.
      stream: (command) =>
        new Promise((resolve, reject) => {
          semaphore
            .run(async () => {
              const stream = await this.stream(host, command);
              resolve(stream);
              await stream.done.catch(() => {});
            })
            .catch(reject);
        }),
    };
  }

  async closeAll(): Promise<void> {
    const clients = [...this.clients.values()];
    this.clients.clear();
    for (const pending of clients) {
      const client = await pending.catch(() => undefined);
      client?.end();
    }
  }

  private connection(host: Host): Promise<Client> {
    let pending = this.clients.get(host.name);
    if (!pending) {
      pending = this.connect(host);
      this.clients.set(host.name, pending);
      // A failed or dropped connection is forgotten, so the next command reconnects.
      pending.then(
        (client) =>
          client.once(
            'close',
            () => this.clients.get(host.name) === pending && this.clients.delete(host.name),
          ),
        () => this.clients.delete(host.name),
      );
    }
    return pending;
  }

  private async connect(host: Host): Promise<Client> {
    const via = host.jump
      ? await this.connection(this.options.hosts.hosts.find((h) => h.name === host.jump)!)
      : undefined;
    let refusal: string | undefined;
    const config: ConnectConfig = {
      host: host.address,
      port: host.port,
      username: host.user,
      readyTimeout: this.options.readyTimeoutMs ?? 10_000,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        const verdict = verifyHostKey(this.options.knownHosts, host.address, host.port, key);
        if (verdict.ok || !verdict.certificateAuthorities) {
          if (!verdict.ok) refusal = verdict.message;
          verify(verdict.ok);
          return;
        }
        // A @cert-authority line covers this host: the key may be vouched for by its certificate.
        void this.hostCertificate(host, via).then(
          (certificate) => {
            const checked = certificate
              ? verifyHostCertificate(
                  this.options.knownHosts,
                  host.address,
                  host.port,
                  key,
                  certificate,
                  this.options.now(),
                )
              : verdict;
            if (!checked.ok) refusal = checked.message;
            verify(checked.ok);
          },
          () => {
            refusal = verdict.message;
            verify(false);
          },
        );
      },
    };
    if (host.key) config.privateKey = readPrivateKey(host, host.key);
    else if (process.env.SSH_AUTH_SOCK) config.agent = process.env.SSH_AUTH_SOCK;
    if (via) config.sock = await forwardTo(via, host);
    return new Promise((resolve, reject) => {
      const client = new Client();
      client.once('ready', () => {
        // Nagle's algorithm costs ~90 ms per exec on ssh2; collectors run many short commands.
        client.setNoDelay(true);
        resolve(client);
      });
      // `on`, not `once`: ssh2 can emit a second error for one connection (the socket reset by the
      // server after a refused host key, seen under load), and an 'error' nobody listens to would
      // crash the bot. An error after 'ready' closes the connection, which its channels report.
      client.on('error', (error) => {
        if (refusal)
          reject(new CodedError(ErrorCode.HostKeyRejected, `${host.name}: ${refusal}`, { cause: error }));
        else
          reject(
            new CodedError(
              ErrorCode.SshFailed,
              `cannot connect to ${host.name} (${host.user}@${host.address}:${host.port}): ${error.message}`,
              { cause: error },
            ),
          );
      });
      client.connect(config);
    });
  }

  /** The host's certificate, over a connection of its own (through the same jump host). */
  private async hostCertificate(host: Host, via: Client | undefined): Promise<Buffer | undefined> {
    const socket: Duplex = via
      ? await forwardTo(via, host)
      : netConnect({ host: host.address, port: host.port });
    return fetchHostCertificate(socket, this.options.readyTimeoutMs ?? 10_000);
  }

  private async stream(host: Host, command: Omit<RemoteCommand, 'maxOutputBytes'>): Promise<RemoteStream> {
    const client = await this.connection(host);
    const { channel, ended } = await openExec(client, host, gentle(command.command, command.timeoutMs));
    const stderr: Buffer[] = [];
    channel.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 64) stderr.push(chunk);
    });
    const done = ended.then((ending) => ({ ...ending, stderr: Buffer.concat(stderr).toString('utf8') }));
    return { stdout: channel, done, abort: () => channel.close() };
  }

  private async exec(host: Host, command: RemoteCommand): Promise<ExecResult> {
    const client = await this.connection(host);
    const started = performance.now();
    const { channel, ended } = await openExec(client, host, gentle(command.command, command.timeoutMs));
    return new Promise((resolve) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let truncated = false;
      let timedOut = false;
      const take = (into: Buffer[]) => (chunk: Buffer) => {
        if (truncated) return;
        const room = command.maxOutputBytes - size;
        if (chunk.length > room) {
          into.push(chunk.subarray(0, Math.max(0, room)));
          size = command.maxOutputBytes;
          truncated = true;
          channel.close();
          return;
        }
        into.push(chunk);
        size += chunk.length;
      };
      // The host enforces the limit with `timeout`; this is the backstop if it cannot.
      const timer = setTimeout(() => {
        timedOut = true;
        channel.close();
      }, command.timeoutMs + 3000);
      channel.on('data', take(out));
      channel.stderr.on('data', take(err));
      void ended.then(({ exitCode, signal }) => {
        clearTimeout(timer);
        const durationMs = Math.round(performance.now() - started);
        resolve({
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          exitCode,
          ...(signal === undefined ? {} : { signal }),
          // coreutils timeout exits 124 when it stopped the command. When the command ignored
          // SIGTERM, --kill-after kills the whole process group, timeout itself included, so the
          // host reports SIGKILL (137 where a shell stood between) at or after the limit.
          timedOut:
            timedOut ||
            exitCode === 124 ||
            exitCode === 137 ||
            (signal === 'SIGKILL' && durationMs >= command.timeoutMs),
          truncated,
          durationMs,
        });
      });
    });
  }
}
