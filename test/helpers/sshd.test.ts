/**
 * Proves the sshd helper with the clients that will use it: ssh2 (what the collector runs) and
 * OpenSSH's own `ssh` (the authority on what a known_hosts line must look like).
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, type ClientChannel, type SFTPWrapper, type Stats } from 'ssh2';
import { requireTool, runTool } from './reference-tools.ts';
import { type Sshd, startSshd } from './sshd.ts';

const TEN_MIB = 10 * 1024 * 1024;

interface Handshake {
  kex: string;
  serverHostKey: string;
  cs: { cipher: string; mac: string };
}

interface Connected {
  client: Client;
  handshake: Handshake;
}

/** The base64 blob of 'ssh-ed25519 AAAA...' as the raw key bytes ssh2 hands to hostVerifier. */
function blobOf(publicLine: string): Buffer {
  return Buffer.from(publicLine.split(' ')[1]!, 'base64');
}

/** Connect with the run's client key, accepting only the host key `expectedLine`. */
function connectTo(sshd: Sshd, expectedLine = sshd.hostKeyPublicLine): Promise<Connected> {
  const expected = blobOf(expectedLine);
  return new Promise((resolve, reject) => {
    const client = new Client();
    let handshake: Handshake | undefined;
    client.once('handshake', (negotiated) => {
      handshake = negotiated as Handshake;
    });
    client.once('ready', () => resolve({ client, handshake: handshake! }));
    // `on`: a refused host key can be followed by a second error (ECONNRESET) under load.
    client.on('error', (error) => {
      client.end();
      reject(error);
    });
    client.connect({
      host: sshd.host,
      port: sshd.port,
      username: sshd.user,
      privateKey: sshd.privateKey,
      hostVerifier: (key: Buffer) => key.equals(expected),
      readyTimeout: 10_000,
    });
  });
}

function openExec(client: Client, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, channel) => (error ? reject(error) : resolve(channel)));
  });
}

interface ExecResult {
  code: number | null;
  /** The signal that ended the command, when sshd sent exit-signal instead of exit-status. */
  signal: string | undefined;
  stdout: string;
  stderr: string;
  bytes: number;
}

/**
 * Run `command` on an exec channel; stdout is counted always, kept only up to 64 KiB. The
 * listeners go on inside ssh2's callback, not after an `await`: ssh2 emits 'exit' while parsing
 * the socket read that brought the exit status, and for a quick command on a loaded machine that
 * is the read that brought the exec reply too (the exit status then looked lost, "under load").
 */
function exec(client: Client, command: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, channel) => {
      if (error) return reject(error);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let bytes = 0;
      let code: number | null = null;
      let signal: string | undefined;
      channel.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes <= 65_536) out.push(chunk);
      });
      channel.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      channel.on('exit', (exitCode: number | null, signalName?: string) => {
        code = exitCode;
        signal = signalName;
      });
      channel.on('close', () =>
        resolve({
          code,
          signal,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          bytes,
        }),
      );
    });
  });
}

function ms(since: number): string {
  return `${Date.now() - since} ms`;
}

describe('startSshd', () => {
  let sshd: Sshd;
  let binDir: string;
  let connected: Connected;

  before(async () => {
    binDir = await mkdtemp(join(tmpdir(), 'nightshift-sshd-bin-'));
    // mkdtemp makes it 0700 root; the test user has to be able to run what is inside.
    await chmod(binDir, 0o755);
    await writeFile(join(binDir, 'docker'), '#!/bin/sh\necho "docker stand-in: $*"\n', { mode: 0o755 });
    sshd = await startSshd({ binDir });
    connected = await connectTo(sshd);
  });

  after(async () => {
    connected?.client.end();
    await sshd?.stop();
    if (binDir !== undefined) await rm(binDir, { recursive: true, force: true });
  });

  test('describes the server the way OpenSSH and ssh2 expect', async () => {
    assert.equal(sshd.host, '127.0.0.1');
    assert.match(sshd.hostKeyPublicLine, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+={0,2}$/);
    assert.match(sshd.otherHostKeyLine, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+={0,2}$/);
    assert.notEqual(sshd.otherHostKeyLine, sshd.hostKeyPublicLine);
    assert.equal(sshd.knownHostsLine, `[127.0.0.1]:${sshd.port} ${sshd.hostKeyPublicLine}`);
    assert.match(sshd.privateKey.toString('utf8'), /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    assert.equal((await stat(sshd.privateKeyPath)).mode & 0o777, 0o600);
    assert.ok(sshd.path.startsWith(`${binDir}:`));
    // ssh-keygen -F finds the entry the way ssh looks a host up (hashed or not, port in brackets).
    const { stdout } = await runTool('ssh-keygen', [
      '-F',
      `[127.0.0.1]:${sshd.port}`,
      '-f',
      sshd.knownHostsPath,
    ]);
    assert.ok(stdout.includes(sshd.knownHostsLine), stdout);
  });

  test('logs in as the test user with ssh2, verifying the ed25519 host key', async () => {
    const { client, handshake } = connected;
    assert.equal(handshake.serverHostKey, 'ssh-ed25519');
    const whoami = await exec(client, 'id -un');
    assert.equal(whoami.code, 0, whoami.stderr);
    assert.equal(whoami.stdout, `${sshd.user}\n`);
    const home = await exec(client, 'stat -c "%a %U" "$HOME/.ssh"');
    assert.equal(home.stdout, `700 ${sshd.user}\n`);
  });

  test('puts binDir first on PATH for commands run over ssh', async () => {
    const path = await exec(connected.client, 'echo $PATH');
    assert.equal(path.code, 0, `${path.signal ?? ''} ${path.stderr}`);
    assert.equal(path.stdout, `${binDir}:/usr/local/bin:/usr/bin:/bin\n`);
    const docker = await exec(connected.client, 'command -v docker && docker ps -a');
    assert.equal(docker.stdout, `${join(binDir, 'docker')}\ndocker stand-in: ps -a\n`);
  });

  test('streams 10 MiB over one exec channel', async (t) => {
    const started = Date.now();
    const result = await exec(connected.client, `head -c ${TEN_MIB} /dev/zero`);
    t.diagnostic(`10 MiB in ${ms(started)}`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.bytes, TEN_MIB);
  });

  test('runs 8 exec channels at once on one connection', async () => {
    // A barrier: each command waits until all 8 have started, so they only finish (exit 0) if
    // sshd really runs them side by side; one at a time, the first would hit `timeout` (124).
    const barrier = await mkdtemp(join(tmpdir(), 'nightshift-sshd-barrier-'));
    await chmod(barrier, 0o777);
    try {
      const wait = `while [ "$(ls ${barrier} | wc -l)" -lt 8 ]; do sleep 0.05; done`;
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          exec(connected.client, `touch ${barrier}/${i} && timeout 5 sh -c '${wait}' && echo ${i}`),
        ),
      );
      assert.deepEqual(
        results.map((r) => [r.code, r.stdout]),
        Array.from({ length: 8 }, (_, i) => [0, `${i}\n`]),
      );
    } finally {
      await rm(barrier, { recursive: true, force: true });
    }
  });

  test('serves sftp', async () => {
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) =>
      connected.client.sftp((error, session) => (error ? reject(error) : resolve(session))),
    );
    const attrs = await new Promise<Stats>((resolve, reject) =>
      sftp.stat('/etc/hostname', (error, stats) => (error ? reject(error) : resolve(stats))),
    );
    assert.ok(attrs.isFile());
    sftp.end();
  });

  test('killConnections drops a transfer in flight and the server takes new connections', async (t) => {
    const { client } = await connectTo(sshd);
    const total = 1024 * 1024 * 1024;
    const channel = await openExec(client, `head -c ${total} /dev/zero`);
    const clientErrors: string[] = [];
    client.on('error', (error) => clientErrors.push(error.message));
    const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    let received = 0;
    let exitCode: number | null | undefined;
    let killing: Promise<void> | undefined;
    const started = Date.now();
    await new Promise<void>((resolve) => {
      channel.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= 1024 * 1024 && killing === undefined) killing = sshd.killConnections();
      });
      channel.on('exit', (code: number | null) => {
        exitCode = code;
      });
      channel.on('close', () => resolve());
    });
    await killing;
    await clientClosed;
    t.diagnostic(
      `dropped after ${received} bytes, ${ms(started)}; client errors: ${clientErrors.join('; ')}`,
    );
    assert.ok(received >= 1024 * 1024 && received < total, `received ${received}`);
    assert.equal(exitCode, undefined, 'the command never reported an exit status');

    // The listener survived, so a fresh connection works. killConnections dropped every
    // connection, the shared one too, so replace it for the tests that follow.
    connected.client.end();
    connected = await connectTo(sshd);
    assert.equal((await exec(connected.client, 'id -un')).stdout, `${sshd.user}\n`);
  });

  test('OpenSSH accepts knownHostsLine and refuses otherHostKeyLine', async () => {
    requireTool('ssh');
    const ssh = (knownHosts: string) =>
      runTool(
        'ssh',
        [
          '-F',
          'none',
          '-i',
          sshd.privateKeyPath,
          '-o',
          `UserKnownHostsFile=${knownHosts}`,
          '-o',
          'GlobalKnownHostsFile=/dev/null',
          '-o',
          'StrictHostKeyChecking=yes',
          '-o',
          'BatchMode=yes',
          '-p',
          String(sshd.port),
          `${sshd.user}@127.0.0.1`,
          'true',
        ],
        { timeoutMs: 15_000, okCodes: [0, 255] },
      );
    const good = await ssh(sshd.knownHostsPath);
    assert.equal(good.code, 0, good.stderr);

    const changed = join(sshd.dir, 'known_hosts.changed');
    await writeFile(changed, `[127.0.0.1]:${sshd.port} ${sshd.otherHostKeyLine}\n`);
    const bad = await ssh(changed);
    assert.equal(bad.code, 255);
    assert.match(bad.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
  });

  test('ssh2 refuses the server when expecting otherHostKeyLine', async () => {
    await assert.rejects(connectTo(sshd, sshd.otherHostKeyLine), /host.*(verif|key)/i);
  });
});

describe('startSshd refuses', () => {
  test('a binDir the test user cannot enter, before starting anything', async () => {
    const hidden = await mkdtemp(join(tmpdir(), 'nightshift-sshd-bin-')); // 0700 root
    try {
      await assert.rejects(startSshd({ binDir: hidden }), /cannot enter binDir/);
      await assert.rejects(startSshd({ binDir: `${hidden}:/usr/bin` }), /binDir must be an absolute path/);
    } finally {
      await rm(hidden, { recursive: true, force: true });
    }
  });
});

describe('stop', () => {
  test('kills connections and the listener and removes the files', async (t) => {
    const started = Date.now();
    const sshd = await startSshd();
    t.diagnostic(`startSshd took ${ms(started)}`);
    const { client } = await connectTo(sshd);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.on('error', () => {});
    const stopping = Date.now();
    await sshd.stop();
    t.diagnostic(`stop took ${ms(stopping)}`);
    await closed;
    await assert.rejects(stat(sshd.dir), { code: 'ENOENT' });
    const refused = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect({ host: '127.0.0.1', port: sshd.port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    assert.ok(refused, 'nothing listens on the port after stop()');
    await sshd.stop(); // twice is fine
  });
});
