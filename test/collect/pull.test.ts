import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { systemClock } from '../../src/clock.ts';
import { parseKnownHosts } from '../../src/collect/known-hosts.ts';
import { pullFile } from '../../src/collect/pull.ts';
import { SshConnections } from '../../src/collect/ssh.ts';
import type { RemoteHost } from '../../src/collect/transport.ts';
import { parseHostsFile } from '../../src/config/hosts.ts';
import { type CodedError, ErrorCode } from '../../src/errors.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { createLogger } from '../../src/log.ts';
import { type CCore, makeCCore } from '../helpers/cores.ts';
import { DOCKER_CLI, type Podman, startPodman } from '../helpers/podman.ts';
import { connectionsTo, hostsBehind } from '../helpers/ssh-hosts.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';

/**
 * Bringing cores home over a real sshd, from a host path and from real containers (Podman's engine,
 * through the Docker CLI and through podman's own), whose crashed processes wrote the cores.
 */
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('pulling evidence over SSH', () => {
  let sshd: Sshd;
  let ssh: SshConnections;
  let core: CCore;
  let work: string;
  let podman: Podman;
  let web: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nightshift-pull-'));
    chmodSync(work, 0o755);
    core = await makeCCore(join(work, 'made'), 'abort');
    podman = await startPodman();
    web = (await podman.crashingContainer({ dir: '/app', running: true })).slice(0, 12);
    writeFileSync(join(work, 'big.bin'), Buffer.alloc(0));
    const bin = join(work, 'bin');
    mkdirSync(bin);
    // The real CLI, except for the container `doomed`, whose copy is killed on the host with the
    // whole command (its process group), as the OOM killer or an operator would.
    writeFileSync(
      join(bin, 'docker'),
      `#!/bin/sh\ncase "$2" in doomed:*) [ "$1" = cp ] && kill -KILL 0 ;; esac\nexec ${DOCKER_CLI} "$@"\n`,
    );
    chmodSync(join(bin, 'docker'), 0o755);
    for (const dir of [join(work, 'made'), dirname(core.path)]) chmodSync(dir, 0o755);
    chmodSync(core.path, 0o644);
    sshd = await startSshd({ binDir: bin, env: podman.clientEnv });
    ssh = connectionsTo(sshd, hostsBehind(sshd, [{ name: 'box' }]));
  });
  after(async () => {
    await ssh?.closeAll();
    await sshd?.stop();
    await podman?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('brings a core home from a host path, byte for byte', async () => {
    const dest = join(work, 'evidence', 'host-core');
    const pulled = await pullFile(ssh.host('box'), { path: core.path }, dest);
    assert.equal(pulled.sha256, sha256(core.path));
    assert.equal(pulled.bytes, readFileSync(core.path).length);
    assert.ok(pulled.transferredBytes < pulled.bytes, 'compressed on the way');
    assert.equal(existsSync(`${dest}.part`), false);
    const report = await analyzeFiles([dest], { now: systemClock, workers: 0 });
    assert.equal(report.dumps[0]!.pid, core.pid);
  });

  it("brings systemd-coredump's and apport's compressed cores home as they are stored, not compressed again", async () => {
    // As systemd-coredump names its store's files: core.<comm>.<uid>.<boot id>.<pid>.<usec>.zst
    const stored = join(
      work,
      'made',
      `core.crash.0.0123456789abcdef0123456789abcdef.${core.pid}.1764750000000000.zst`,
    );
    execFileSync('zstd', ['-q', '-f', '-o', stored, core.path]);
    chmodSync(stored, 0o644);
    const dest = join(work, 'evidence', 'stored-core');
    const pulled = await pullFile(ssh.host('box'), { path: stored }, dest);
    assert.equal(pulled.compression, 'stored');
    assert.equal(pulled.sha256, sha256(stored), 'the file as the host keeps it');
    assert.equal(pulled.bytes, readFileSync(stored).length);
    assert.equal(pulled.transferredBytes, pulled.bytes, 'sent as it is, not compressed again');
    const report = await analyzeFiles([dest], { now: systemClock, workers: 0 });
    assert.deepEqual(report.errors, []);
    assert.equal(report.dumps[0]!.pid, core.pid);
    assert.equal(report.dumps[0]!.signal?.name, 'SIGABRT');
  });

  it('brings a core home from a container as the tar stream docker cp emits, which the analyzer reads', async () => {
    const dest = join(work, 'evidence', 'web-core.tar');
    const pulled = await pullFile(ssh.host('box'), { container: web, path: '/app/core' }, dest);
    // Byte for byte what the engine's own copy gives.
    const direct = execFileSync(DOCKER_CLI, ['cp', `${web}:/app/core`, '-'], {
      env: { ...process.env, ...podman.clientEnv },
      maxBuffer: 1 << 30,
    });
    assert.equal(pulled.sha256, createHash('sha256').update(direct).digest('hex'));
    const report = await analyzeFiles([dest], { now: systemClock, workers: 0 });
    assert.deepEqual(report.errors, []);
    assert.equal(report.dumps[0]!.container, 'tar');
    assert.equal(report.dumps[0]!.entry, 'core');
    assert.equal(report.dumps[0]!.executable, '/bin/crash');
  });

  it('keeps a container core as the zstd stream the host sent, following its frames, decoded beside only when asked', async () => {
    const direct = execFileSync(DOCKER_CLI, ['cp', `${web}:/app/core`, '-'], {
      env: { ...process.env, ...podman.clientEnv },
      maxBuffer: 1 << 30,
    });
    const progress: number[] = [];
    const kept = await pullFile(
      ssh.host('box'),
      { container: web, path: '/app/core' },
      join(work, 'evidence', 'kept.tar.zst'),
      { compression: 'zstd', keep: 'compressed', onProgress: (bytes) => progress.push(bytes) },
    );
    const file = readFileSync(kept.localPath);
    assert.equal(file.readUInt32LE(0), 0xfd2fb528, 'the zstd stream, as it came');
    assert.equal(kept.keptAs, 'compressed');
    assert.equal(kept.bytes, file.length);
    assert.equal(kept.sha256, createHash('sha256').update(file).digest('hex'), 'of the file as kept');
    assert.equal(kept.contentSha256, null, 'not decoded here');
    assert.equal(kept.contentBytes, null);
    assert.ok(kept.bytes < direct.length / 2, `${kept.bytes} of ${direct.length}`);
    assert.ok(zstdDecompressSync(file).equals(direct), 'byte for byte what docker cp gives');
    // Progress counts content from the block headers: within one block of the truth at the end.
    const last = progress.at(-1)!;
    assert.ok(last >= direct.length && last <= direct.length + 128 * 1024, `${last} vs ${direct.length}`);
    const report = await analyzeFiles([kept.localPath], { now: systemClock, workers: 0 });
    assert.deepEqual(report.errors, []);
    assert.equal(report.dumps[0]!.entry, 'core');
    assert.equal(report.dumps[0]!.executable, '/bin/crash');

    const hashed = await pullFile(
      ssh.host('box'),
      { container: web, path: '/app/core' },
      join(work, 'evidence', 'hashed.tar.zst'),
      { compression: 'zstd', keep: 'compressed', hashContent: true },
    );
    assert.equal(hashed.contentSha256, createHash('sha256').update(direct).digest('hex'));
    assert.equal(hashed.contentBytes, direct.length);
    // Kept compressed only as zstd, which the bot can follow without decoding.
    await assert.rejects(
      pullFile(ssh.host('box'), { path: core.path }, join(work, 'evidence', 'gz.zst'), {
        keep: 'compressed',
      }),
      /only as zstd/,
    );
  });

  it('keeps no file when a kept zstd stream stops inside a frame, though the host said all went well', async () => {
    const whole = zstdCompressSync(Buffer.from('GET /api/feeds/refresh?customer=4711\n'.repeat(100_000)));
    const sent = (stream: Buffer): RemoteHost => ({
      name: 'cut',
      exec: () => Promise.reject(new Error('not used')),
      stream: async () => ({
        stdout: Readable.from([stream.subarray(0, 1000), stream.subarray(1000)]),
        done: Promise.resolve({ exitCode: 0, stderr: 'nightshift-status:0\n' }),
        abort: () => {},
      }),
    });
    // Decoded beside as well: the decoder of a failed transfer is freed, not left waiting.
    const options = { compression: 'zstd', keep: 'compressed', hashContent: true } as const;
    const dest = join(work, 'evidence', 'cut.tar.zst');
    await assert.rejects(
      pullFile(sent(whole.subarray(0, whole.length - 7)), { container: 'c', path: '/core' }, dest, options),
      /stopped inside a frame; nothing was kept/,
    );
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
    const ok = await pullFile(sent(whole), { container: 'c', path: '/core' }, dest, options);
    assert.equal(ok.bytes, whole.length);
    assert.equal(ok.contentBytes, 100_000 * 'GET /api/feeds/refresh?customer=4711\n'.length);
  });

  it('copies out of a container with podman where there is no docker, over ssh', async () => {
    // A host with Podman only: docker is in /usr/local/bin here, so PATH leaves it out.
    const podmanOnly = await startSshd({ basePath: '/usr/bin:/bin', env: podman.clientEnv });
    const connections = new SshConnections({
      now: systemClock,
      hosts: parseHostsFile(
        JSON.stringify({
          hosts: [
            {
              name: 'pod',
              address: podmanOnly.host,
              port: podmanOnly.port,
              user: podmanOnly.user,
              key: podmanOnly.privateKeyPath,
            },
          ],
        }),
        'hosts.json',
      ),
      knownHosts: parseKnownHosts(podmanOnly.knownHostsLine),
      log: createLogger({ level: 'silent' }),
    });
    try {
      const which = await connections.host('pod').exec({
        command: 'command -v docker; command -v podman',
        timeoutMs: 10_000,
        maxOutputBytes: 4096,
      });
      assert.equal(which.stdout.trim(), '/usr/bin/podman');
      const dest = join(work, 'evidence', 'podman-core.tar');
      await pullFile(connections.host('pod'), { container: web, path: '/app/core' }, dest);
      const report = await analyzeFiles([dest], { now: systemClock, workers: 0 });
      assert.deepEqual(report.errors, []);
      assert.equal(report.dumps[0]!.entry, 'core');
      assert.equal(report.dumps[0]!.executable, '/bin/crash');
    } finally {
      await connections.closeAll();
      await podmanOnly.stop();
    }
  });

  it('finishes a copy already streaming when its container is removed, and says why the next one fails', async () => {
    // 256 MiB that do not compress: the copy is still streaming when the container goes. The
    // engine reads the core through a descriptor it opened, so what was started arrives whole.
    const doomed = (await podman.crashingContainer({ dir: '/app', running: true, coreMiB: 256 })).slice(
      0,
      12,
    );
    const dest = join(work, 'evidence', 'removed.tar');
    let removal: Promise<number> | undefined;
    const pulled = await pullFile(ssh.host('box'), { container: doomed, path: '/app/core' }, dest, {
      onProgress: (bytes) => {
        if (!removal && bytes > 8 * 1024 * 1024)
          removal = podman
            .docker(['kill', doomed])
            .then(() => podman.docker(['rm', '-f', doomed]))
            .then(() => performance.now());
      },
    });
    const pulledAt = performance.now();
    assert.ok(removal, 'removal started during the transfer');
    assert.ok((await removal) < pulledAt, 'the container was gone before the transfer ended');
    assert.ok(pulled.bytes > 256 * 1024 * 1024, String(pulled.bytes));
    const report = await analyzeFiles([dest], { now: systemClock, workers: 0 });
    assert.deepEqual(report.errors, []);
    assert.equal(report.dumps[0]!.executable, '/bin/crash');
    const again = join(work, 'evidence', 'removed-again.tar');
    await assert.rejects(
      pullFile(ssh.host('box'), { container: doomed, path: '/app/core' }, again),
      new RegExp(
        `the remote command failed \\(1\\): Error response from daemon: no container with name or ID "${doomed}" found: no such container; nothing was kept`,
      ),
    );
    assert.equal(existsSync(again), false);
    assert.equal(existsSync(`${again}.part`), false);
  });

  it('uses zstd where the host has it, and gzip when told to; both arrive byte for byte', async () => {
    const zstd = await pullFile(ssh.host('box'), { path: core.path }, join(work, 'evidence', 'zstd-core'), {
      compression: 'zstd',
    });
    assert.equal(zstd.compression, 'zstd');
    assert.equal(zstd.sha256, sha256(core.path));
    const gzip = await pullFile(ssh.host('box'), { path: core.path }, join(work, 'evidence', 'gzip-core'), {
      compression: 'gzip',
    });
    assert.equal(gzip.compression, 'gzip');
    assert.equal(gzip.sha256, sha256(core.path));
    // This host has zstd (CI installs it), so the host's own choice is zstd.
    const auto = await pullFile(ssh.host('box'), { path: core.path }, join(work, 'evidence', 'auto-core'));
    assert.equal(auto.compression, 'zstd');
  });

  it('refuses a core swapped for a symlink (to /etc/shadow, say) instead of copying what it points to', async () => {
    const link = join(work, 'core.666');
    symlinkSync(core.path, link);
    const dest = join(work, 'evidence', 'linked');
    await assert.rejects(
      pullFile(ssh.host('box'), { path: link }, dest),
      /not a regular file.*nothing was kept/,
    );
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  it("stops cleanly when the bot's own disk would run low, before and during a transfer", async () => {
    const before = join(work, 'evidence', 'no-room');
    await assert.rejects(
      pullFile(ssh.host('box'), { path: core.path }, before, { reserveBytes: Number.MAX_SAFE_INTEGER }),
      /not pulling .*: less than \d+ bytes free on the bot's disk/,
    );
    assert.equal(existsSync(`${before}.part`), false);
    // Room for the start, not for the whole: 96 MiB of random data against 32 MiB of headroom.
    // The remote side must be stopped too: unread, it would hold the transfer open until its timeout.
    // The evidence goes to a small ext4 of its own: on the shared root filesystem, other tests
    // deleting files beside this one freed more than the headroom mid-transfer, and it went through.
    const big = join(work, 'room.bin');
    execFileSync('sh', ['-c', `head -c 100663296 /dev/urandom > ${big} && chmod 644 ${big}`]);
    const small = join(work, 'small-disk');
    mkdirSync(small);
    execFileSync('truncate', ['-s', '192M', join(work, 'small-disk.img')]);
    execFileSync('mkfs.ext4', ['-q', '-F', join(work, 'small-disk.img')]);
    execFileSync('mount', ['-o', 'loop', join(work, 'small-disk.img'), small]);
    try {
      const fs = statfsSync(small);
      const free = fs.bavail * fs.bsize;
      const during = join(small, 'evidence', 'filled');
      const started = Date.now();
      await assert.rejects(
        pullFile(ssh.host('box'), { path: big }, during, { reserveBytes: free - 32 * 1024 * 1024 }),
        /the bot's disk would drop below \d+ bytes free; nothing was kept/,
      );
      assert.ok(Date.now() - started < 20_000, 'it stopped, and did not wait for the remote timeout');
      assert.equal(existsSync(during), false);
      assert.equal(existsSync(`${during}.part`), false);
    } finally {
      execFileSync('umount', [small]);
    }
    // And the host's session is free again for the next pull.
    const next = await pullFile(ssh.host('box'), { path: core.path }, join(work, 'evidence', 'after-full'));
    assert.equal(next.sha256, sha256(core.path));
  });

  it('keeps nothing when the remote command fails, and says why', async () => {
    const dest = join(work, 'evidence', 'missing');
    await assert.rejects(
      pullFile(ssh.host('box'), { container: web, path: '/app/core.none' }, dest),
      /the remote command failed \(1\): Error response from daemon: no such file or directory; nothing was kept/,
    );
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  it('says so when the host killed the remote command, instead of blaming the connection', async () => {
    const dest = join(work, 'evidence', 'killed');
    await assert.rejects(
      pullFile(ssh.host('box'), { container: 'doomed', path: '/app/core' }, dest),
      /from box failed after \d+ bytes: the remote command was killed by SIGKILL; nothing was kept/,
    );
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  it('leaves no file that looks whole when the connection drops mid-transfer', async () => {
    const big = join(work, 'random.bin');
    writeFileSync(big, Buffer.alloc(0));
    // 256 MiB of random bytes: gzip cannot shrink them, so the transfer takes a while.
    const { execFileSync } = await import('node:child_process');
    execFileSync('sh', ['-c', `head -c 268435456 /dev/urandom > ${big} && chmod 644 ${big}`]);
    const dest = join(work, 'evidence', 'dropped');
    let killed = false;
    await assert.rejects(
      pullFile(ssh.host('box'), { path: big }, dest, {
        onProgress: (bytes) => {
          if (!killed && bytes > 8 * 1024 * 1024) {
            killed = true;
            void sshd.killConnections();
          }
        },
      }),
      // Coded as a lost connection, which the runner tries once more (by code, not by its text).
      (error: CodedError) =>
        error.code === ErrorCode.ConnectionLost && /nothing was kept/.test(error.message),
    );
    assert.ok(killed);
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });
});
