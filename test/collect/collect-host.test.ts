import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { collectHost } from '../../src/collect/collect-host.ts';
import { parseKnownHosts } from '../../src/collect/known-hosts.ts';
import { SshConnections } from '../../src/collect/ssh.ts';
import { parseHostsFile } from '../../src/config/hosts.ts';
import { createLogger } from '../../src/log.ts';
import { makeCCore } from '../helpers/cores.ts';
import { writeDockerStandIn } from '../helpers/docker-stand-in.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';

describe('the built-in collection on a host over SSH', () => {
  let sshd: Sshd;
  let ssh: SshConnections;
  let work: string;
  let coreBytes: number;
  let corePid: number;
  let hostsPath: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nightshift-collect-'));
    chmodSync(work, 0o755);
    const core = await makeCCore(join(work, 'made'), 'abort');
    const bytes = readFileSync(core.path);
    coreBytes = bytes.length;
    corePid = core.pid;
    writeDockerStandIn(join(work, 'bin'), join(work, 'containers'), [
      {
        id: 'a1b2c3d4e5f6',
        name: 'web-1',
        running: true,
        size: '1.2GB (virtual 2GB)',
        files: { [`/app/core.${core.pid}`]: bytes, '/app/ok.txt': 'x' },
      },
      {
        id: 'f6e5d4c3b2a1',
        name: 'worker-7',
        running: false,
        size: '3MB (virtual 1GB)',
        files: { '/srv/core': bytes },
      },
    ]);
    for (const dir of [
      'containers',
      'containers/a1b2c3d4e5f6',
      'containers/a1b2c3d4e5f6/app',
      'containers/f6e5d4c3b2a1',
      'containers/f6e5d4c3b2a1/srv',
    ]) {
      chmodSync(join(work, dir), 0o755);
    }
    sshd = await startSshd({ binDir: join(work, 'bin') });
    const hosts = parseHostsFile(
      JSON.stringify({
        hosts: [
          {
            name: 'web',
            address: sshd.host,
            port: sshd.port,
            user: sshd.user,
            key: sshd.privateKeyPath,
            // This "host" is the test machine: look only where this test put its cores.
            coreSearchPaths: [work],
          },
        ],
      }),
      'hosts.json',
    );
    hostsPath = join(work, 'hosts.json');
    writeFileSync(hostsPath, JSON.stringify({ ...hosts, knownHosts: sshd.knownHostsPath }));
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

  it('finds the cores in running and stopped containers, with what is known of them', async () => {
    const collection = await collectHost(ssh.host('web'));
    assert.deepEqual(collection.errors, []);
    const inContainers = collection.cores.filter((c) => c.container !== null);
    assert.deepEqual(
      inContainers.map((c) => [c.container, c.path.replace(/\d+$/, 'N'), c.sizeBytes]).sort(),
      [
        ['a1b2c3d4e5f6', '/app/core.N', coreBytes],
        ['f6e5d4c3b2a1', '/srv/core', null],
      ],
    );
    const finding = collection.findings.find((f) => f.title.startsWith('2 core dumps in containers'));
    assert.ok(finding, JSON.stringify(collection.findings.map((f) => f.title)));
    assert.match(finding.detail, /a1b2c3d4e5f6 \/app\/core\.\d+ \(\d+\.\d MiB, 0 min ago\)/);
    assert.ok(collection.findings.some((f) => f.title === 'Container web-1 has written 1.2GB to its layer'));
    const settings = collection.findings.find((f) => f.title === 'How this host writes core dumps')!;
    assert.match(settings.detail, /kernel\.core_pattern: /);
    assert.ok(collection.filesystems.some((f) => f.mount === '/'));
  });

  it('holds the collectors a policy names for an approval, with their exact command, and runs the rest', async () => {
    const collection = await collectHost(ssh.host('web'), {
      needApproval: ['docker disk usage', 'core dump settings'],
    });
    assert.deepEqual(
      collection.held.map((h) => h.name),
      ['core dump settings', 'docker disk usage'],
    );
    assert.match(collection.held[1]!.command, /"\$d" system df/);
    assert.ok(!collection.findings.some((f) => f.title === 'How this host writes core dumps'));
    assert.ok(!collection.findings.some((f) => /has written .* to its layer/.test(f.title)));
    assert.equal(collection.cores.filter((c) => c.container).length, 2, 'the other collectors still ran');
  });

  it('nightshift collect --pull brings every core home and analyses them as one set', () => {
    const into = join(work, 'pulled');
    const root = new URL('../../', import.meta.url).pathname;
    const run = spawnSync(`${root}bin/nightshift`, ['collect', 'web', '--pull', '--into', into, '--json'], {
      env: { ...process.env, NIGHTSHIFT_HOSTS: hostsPath },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as {
      pulled: Array<{ localPath: string; bytes: number; sha256: string }>;
      pullErrors: string[];
      report: { dumps: Array<{ pid: number; container: string; file: string }> };
    };
    // This loopback "host" is the test machine: the host collector also finds the fixture files
    // and the made core on its disk, and whatever cores other test files running alongside have
    // left in /tmp (they may vanish mid-pull). Only this test's own files are asserted on.
    const mine = (path: string) => path.endsWith('.tar') || path.includes(basename(work));
    assert.deepEqual(out.pullErrors.filter(mine), []);
    const pulled = out.pulled.filter((p) => mine(p.localPath));
    const fromContainers = pulled.filter((p) => p.localPath.endsWith('.tar'));
    assert.equal(fromContainers.length, 2, JSON.stringify(out.pulled.map((p) => p.localPath)));
    assert.ok(pulled.length >= 4, 'two container cores, and their fixture files on the host');
    for (const p of pulled) {
      assert.ok(existsSync(p.localPath), p.localPath);
      assert.equal(existsSync(`${p.localPath}.part`), false);
    }
    for (const p of fromContainers)
      assert.ok(p.bytes > coreBytes, 'a tar stream holds the core and its header');
    const dumps = out.report.dumps.filter((d) => mine(d.file));
    assert.deepEqual(
      dumps.map((d) => d.file).sort(),
      pulled.map((p) => p.localPath).sort(),
      'every file pulled was analysed as one set',
    );
    assert.deepEqual(
      dumps.filter((d) => d.container === 'tar').map((d) => d.pid),
      [corePid, corePid],
    );
    assert.ok(dumps.every((d) => d.pid === corePid));
  });
});
