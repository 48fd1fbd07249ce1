import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
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
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { parseKnownHosts } from '../../src/collect/known-hosts.ts';
import { pullCommand, pullFile } from '../../src/collect/pull.ts';
import { SshConnections } from '../../src/collect/ssh.ts';
import { parseHostsFile } from '../../src/config/hosts.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { createLogger } from '../../src/log.ts';
import { type CCore, makeCCore } from '../helpers/cores.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';

/**
 * Bringing cores home over a real sshd, from a host path and from a container through a `docker`
 * stand-in (the test host has no Docker engine) that answers `docker cp <id>:<path> -` with the
 * tar stream Docker emits, over a fixture directory of containers holding real core files.
 */
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('pulling evidence over SSH', () => {
  let sshd: Sshd;
  let ssh: SshConnections;
  let core: CCore;
  let work: string;
  let fixtures: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nightshift-pull-'));
    chmodSync(work, 0o755);
    core = await makeCCore(join(work, 'made'), 'abort');
    fixtures = join(work, 'containers');
    mkdirSync(join(fixtures, 'web1/app'), { recursive: true });
    copyFileSync(core.path, join(fixtures, 'web1/app', `core.${core.pid}`));
    writeFileSync(join(work, 'big.bin'), Buffer.alloc(0));
    const bin = join(work, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'docker'),
      `#!/bin/sh
# docker stand-in: cp <container>:<path> - emits a tar of that path, as docker cp does.
case "$1" in
  cp)
    id="\${2%%:*}"; path="\${2#*:}"; root="${fixtures}/$id"
    # Killed on the host (the OOM killer, say), with the whole command: its process group.
    [ "$id" = doomed ] && kill -KILL 0
    [ -e "$root$path" ] || { echo "Error response from daemon: Could not find the file $path in container $id" >&2; exit 1; }
    exec tar -C "$root$(dirname "$path")" -cf - "$(basename "$path")" ;;
  *) echo "docker stand-in: unsupported: $*" >&2; exit 1 ;;
esac
`,
    );
    chmodSync(join(bin, 'docker'), 0o755);
    for (const dir of [
      join(work, 'made'),
      dirname(core.path),
      fixtures,
      join(fixtures, 'web1'),
      join(fixtures, 'web1/app'),
    ])
      chmodSync(dir, 0o755);
    chmodSync(core.path, 0o644);
    chmodSync(join(fixtures, 'web1/app', `core.${core.pid}`), 0o644);
    sshd = await startSshd({ binDir: bin });
    const hosts = parseHostsFile(
      JSON.stringify({
        hosts: [
          { name: 'box', address: sshd.host, port: sshd.port, user: sshd.user, key: sshd.privateKeyPath },
        ],
      }),
      'hosts.json',
    );
    ssh = new SshConnections({
      hosts,
      knownHosts: parseKnownHosts(sshd.knownHostsLine),
      log: createLogger({ level: 'silent' }),
    });
  });
  after(async () => {
    await ssh?.closeAll();
    await sshd?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('brings a core home from a host path, byte for byte', async () => {
    const dest = join(work, 'evidence', 'host-core');
    const pulled = await pullFile(ssh.host('box'), { path: core.path }, dest);
    assert.equal(pulled.sha256, sha256(core.path));
    assert.equal(pulled.bytes, readFileSync(core.path).length);
    assert.ok(pulled.transferredBytes < pulled.bytes, 'compressed on the way');
    assert.equal(existsSync(`${dest}.part`), false);
    const report = await analyzeFiles([dest], { workers: 0 });
    assert.equal(report.dumps[0]!.pid, core.pid);
  });

  it('brings a core home from a container as the tar stream docker cp emits, which the analyzer reads', async () => {
    const dest = join(work, 'evidence', 'web1-core.tar');
    await pullFile(ssh.host('box'), { container: 'web1', path: `/app/core.${core.pid}` }, dest);
    const report = await analyzeFiles([dest], { workers: 0 });
    assert.deepEqual(report.errors, []);
    assert.equal(report.dumps[0]!.container, 'tar');
    assert.equal(report.dumps[0]!.entry, `core.${core.pid}`);
    assert.equal(report.dumps[0]!.pid, core.pid);
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

  it('copies out of a container with podman where there is no docker', () => {
    const bin = join(work, 'podman-only');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'podman'),
      `#!/bin/sh\n[ "$1" = cp ] || exit 1\nid="\${2%%:*}"; path="\${2#*:}"\nexec tar -C "${fixtures}/$id$(dirname "$path")" -cf - "$(basename "$path")"\n`,
    );
    chmodSync(join(bin, 'podman'), 0o755);
    // Only what the command needs: no docker on this PATH.
    for (const tool of ['tar', 'gzip', 'dirname', 'basename'])
      symlinkSync(
        execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(),
        join(bin, tool),
      );
    const out = execFileSync(
      '/bin/sh',
      ['-c', pullCommand({ container: 'web1', path: `/app/core.${core.pid}` }, 'gzip')],
      { env: { PATH: bin }, maxBuffer: 1 << 30 },
    );
    const tar = gunzipSync(out);
    assert.equal(tar.subarray(0, `core.${core.pid}`.length).toString(), `core.${core.pid}`);
    assert.equal(tar.subarray(512, 516).toString('latin1'), '\x7fELF');
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
    const big = join(work, 'room.bin');
    execFileSync('sh', ['-c', `head -c 100663296 /dev/urandom > ${big} && chmod 644 ${big}`]);
    const fs = statfsSync(join(work, 'evidence'));
    const free = fs.bavail * fs.bsize;
    const during = join(work, 'evidence', 'filled');
    const started = Date.now();
    await assert.rejects(
      pullFile(ssh.host('box'), { path: big }, during, { reserveBytes: free - 32 * 1024 * 1024 }),
      /the bot's disk would drop below \d+ bytes free; nothing was kept/,
    );
    assert.ok(Date.now() - started < 20_000, 'it stopped, and did not wait for the remote timeout');
    assert.equal(existsSync(during), false);
    assert.equal(existsSync(`${during}.part`), false);
    // And the host's session is free again for the next pull.
    const next = await pullFile(ssh.host('box'), { path: core.path }, join(work, 'evidence', 'after-full'));
    assert.equal(next.sha256, sha256(core.path));
  });

  it('keeps nothing when the remote command fails, and says why', async () => {
    const dest = join(work, 'evidence', 'missing');
    await assert.rejects(
      pullFile(ssh.host('box'), { container: 'web1', path: '/app/core.none' }, dest),
      /Could not find the file \/app\/core\.none.*nothing was kept/,
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
      /nothing was kept/,
    );
    assert.ok(killed);
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });
});
