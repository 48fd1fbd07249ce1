import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { collectHost } from '../../src/collect/collect-host.ts';
import { parseKnownHosts } from '../../src/collect/known-hosts.ts';
import { SshConnections } from '../../src/collect/ssh.ts';
import { type HostsFile, parseHostsFile } from '../../src/config/hosts.ts';
import { CodedError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';

/**
 * A TCP relay to `port` on loopback that, once `coalesce` is on, holds what the server sends until
 * it has been quiet for `quietMs`, then passes it on in one write: the client gets a whole burst in
 * one read, as a bot does when it is busy elsewhere while a quick command runs (the machine loaded,
 * other pulls decompressing). What the client sends goes through at once.
 */
async function burstLink(port: number, quietMs: number) {
  let coalesce = false;
  const server = createServer((client) => {
    const upstream = tcpConnect({ host: '127.0.0.1', port });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let held: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      if (held.length > 0 && !client.destroyed) client.write(Buffer.concat(held));
      held = [];
    };
    upstream.on('data', (chunk: Buffer) => {
      if (!coalesce) return void client.write(chunk);
      held.push(chunk);
      clearTimeout(timer);
      timer = setTimeout(flush, quietMs);
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    const end = () => {
      clearTimeout(timer);
      flush();
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) socket.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    set coalesce(on: boolean) {
      coalesce = on;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Collection against a real OpenSSH server on loopback. */
describe('the SSH transport against a real sshd', () => {
  let sshd: Sshd;
  let hosts: HostsFile;
  let ssh: SshConnections;
  const log = createLogger({ level: 'silent' });
  const connect = (knownHosts: string) =>
    new SshConnections({ now: systemClock, hosts, knownHosts: parseKnownHosts(knownHosts), log });

  before(async () => {
    sshd = await startSshd();
    hosts = parseHostsFile(
      JSON.stringify({
        knownHosts: sshd.knownHostsPath,
        hosts: [
          {
            name: 'box',
            address: sshd.host,
            port: sshd.port,
            user: sshd.user,
            key: sshd.privateKeyPath,
            maxSessions: 2,
          },
        ],
      }),
      'hosts.json',
    );
    ssh = connect(readFileSync(sshd.knownHostsPath, 'utf8'));
  });
  after(async () => {
    await ssh.closeAll();
    await sshd.stop();
  });

  it('runs a command as the configured user, at the lowest priority', async () => {
    const box = ssh.host('box');
    const who = await box.exec({ command: 'id -un', timeoutMs: 10_000, maxOutputBytes: 1024 });
    assert.deepEqual(
      [who.stdout.trim(), who.exitCode, who.timedOut, who.truncated],
      [sshd.user, 0, false, false],
    );
    const niceness = await box.exec({ command: 'nice', timeoutMs: 10_000, maxOutputBytes: 1024 });
    assert.equal(niceness.stdout.trim(), '19');
    const io = await box.exec({ command: 'ionice -p $$', timeoutMs: 10_000, maxOutputBytes: 1024 });
    assert.match(io.stdout, /idle/);
  });

  it("collects the host's filesystems", async () => {
    const collection = await collectHost(ssh.host('box'), { now: new Date() });
    assert.deepEqual(collection.errors, []);
    assert.ok(collection.filesystems.some((f) => f.mount === '/'));
  });

  it('stops a command at its time limit', async () => {
    const started = Date.now();
    const result = await ssh.host('box').exec({ command: 'sleep 30', timeoutMs: 1500, maxOutputBytes: 1024 });
    assert.equal(result.timedOut, true);
    assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);
  });

  it('stops a command that ignores SIGTERM with SIGKILL, and says it timed out', async () => {
    // timeout(1) then kills its whole process group, itself included: the host reports
    // exit-signal KILL rather than an exit status.
    const result = await ssh
      .host('box')
      .exec({ command: "trap '' TERM; sleep 30", timeoutMs: 1000, maxOutputBytes: 1024 });
    assert.equal(result.signal, 'SIGKILL');
    assert.equal(result.timedOut, true);
    assert.ok(result.durationMs < 10_000, `${result.durationMs} ms`);
  });

  it('caps the output and stops the command', async () => {
    const result = await ssh
      .host('box')
      .exec({ command: 'head -c 10485760 /dev/zero', timeoutMs: 10_000, maxOutputBytes: 65_536 });
    assert.equal(result.truncated, true);
    assert.equal(result.stdout.length, 65_536);
  });

  it('runs at most maxSessions commands at once on a host, over one reused connection', async () => {
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 6 }, () =>
        ssh.host('box').exec({ command: 'sleep 1', timeoutMs: 10_000, maxOutputBytes: 1024 }),
      ),
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 2900, `6 × 1 s at 2 at a time took only ${elapsed} ms`);
    const logins = readFileSync(sshd.logPath, 'utf8').match(/Accepted publickey/g) ?? [];
    assert.equal(logins.length, 1, 'every command used the same connection');
  });

  it('refuses a host whose key changed, and one whose key is not pinned, saying which', async () => {
    const [, type, key] = `x ${sshd.otherHostKeyLine}`.split(' ');
    const changed = connect(`[${sshd.host}]:${sshd.port} ${type} ${key}\n`);
    await assert.rejects(
      changed.host('box').exec({ command: 'true', timeoutMs: 5000, maxOutputBytes: 10 }),
      (error: unknown) =>
        error instanceof CodedError &&
        error.code === 'nightshift_host_key_rejected' &&
        /has CHANGED/.test(error.message),
    );
    const unknown = connect('');
    await assert.rejects(
      unknown.host('box').exec({ command: 'true', timeoutMs: 5000, maxOutputBytes: 10 }),
      /is not in known_hosts: refusing to connect/,
    );
    // The collection stops at the refusal and says it once, instead of once per collector.
    const collection = await collectHost(changed.host('box'), { now: new Date() });
    assert.equal(collection.errors.length, 1, collection.errors.join('\n'));
    assert.match(collection.errors[0]!, /CHANGED since it was pinned/);
    assert.deepEqual(collection.findings, []);
    await changed.closeAll();
    await unknown.closeAll();
  });

  it('reconnects after the connection dropped', async () => {
    await sshd.killConnections();
    await new Promise((r) => setTimeout(r, 200));
    const again = await ssh
      .host('box')
      .exec({ command: 'echo back', timeoutMs: 10_000, maxOutputBytes: 100 });
    assert.equal(again.stdout.trim(), 'back');
  });

  it('nightshift collect prints the findings of a host from the hosts file', () => {
    const file = `${sshd.dir}/hosts.json`;
    writeFileSync(file, JSON.stringify(hosts));
    const root = new URL('../../', import.meta.url).pathname;
    const run = spawnSync(`${root}bin/nightshift`, ['collect', 'box', '--json'], {
      env: { ...process.env, NIGHTSHIFT_HOSTS: file },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const collection = JSON.parse(run.stdout);
    assert.equal(collection.host, 'box');
    assert.ok(collection.filesystems.length > 0);
  });

  it('tells how a quick command ended when its whole reply arrives in one read', async () => {
    // The exec reply, the output, the exit status and the close in one read: the exit status was
    // lost that way, and a pull that had brought every byte home failed as "the connection dropped".
    const link = await burstLink(sshd.port, 300);
    const box = hosts.hosts[0]!;
    const slow = new SshConnections({
      now: systemClock,
      hosts: { ...hosts, hosts: [{ ...box, port: link.port }] },
      knownHosts: parseKnownHosts(`[${sshd.host}]:${link.port} ${sshd.hostKeyPublicLine}`),
      log,
    });
    try {
      const remote = slow.host('box');
      const command = { timeoutMs: 10_000, maxOutputBytes: 1024 };
      assert.equal((await remote.exec({ ...command, command: 'true' })).exitCode, 0, 'connected');
      link.coalesce = true;
      const ran = await remote.exec({ ...command, command: 'echo out; echo err >&2; exit 3' });
      assert.deepEqual([ran.exitCode, ran.stdout, ran.stderr], [3, 'out\n', 'err\n']);
      const streamed = await remote.stream({ ...command, command: 'echo out; echo err >&2; exit 4' });
      const out: Buffer[] = [];
      streamed.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      const done = await streamed.done;
      assert.deepEqual([done.exitCode, Buffer.concat(out).toString(), done.stderr], [4, 'out\n', 'err\n']);
    } finally {
      await slow.closeAll();
      await link.close();
    }
  });

  it('reports a command killed by a signal as such, not as a dropped connection', async () => {
    const killed = await ssh
      .host('box')
      .exec({ command: 'kill -TERM $$', timeoutMs: 10_000, maxOutputBytes: 100 });
    assert.deepEqual([killed.exitCode, killed.signal], [null, 'SIGTERM']);
    const streamed = await ssh.host('box').stream({ command: 'kill -KILL $$', timeoutMs: 10_000 });
    streamed.stdout.resume();
    const done = await streamed.done;
    assert.deepEqual([done.exitCode, done.signal], [null, 'SIGKILL']);
  });
});
