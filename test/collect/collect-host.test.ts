import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { collectHost } from '../../src/collect/collect-host.ts';
import type { SshConnections } from '../../src/collect/ssh.ts';
import { type Podman, startPodman } from '../helpers/podman.ts';
import { connectionsTo, hostsBehind, writeHostsFile } from '../helpers/ssh-hosts.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';

describe('the built-in collection on a host over SSH', () => {
  let sshd: Sshd;
  let ssh: SshConnections;
  let work: string;
  let podman: Podman;
  let web: string;
  let worker: string;
  let coreBytes: number;
  let hostsPath: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nightshift-collect-'));
    chmodSync(work, 0o755);
    podman = await startPodman();
    web = (await podman.crashingContainer({ dir: '/app', running: true, name: 'web-1' })).slice(0, 12);
    worker = (await podman.crashingContainer({ dir: '/srv', running: false, name: 'worker-7' })).slice(0, 12);
    // The core's size from the tar header docker cp sends (octal, at offset 124).
    const tar = await podman.docker(['cp', `${web}:/app/core`, '-']);
    coreBytes = Number.parseInt(tar.slice(124, 136).replace(/\0.*$/, '').trim(), 8);
    sshd = await startSshd({ env: podman.clientEnv });
    // This "host" is the test machine: look only where this test puts files (the default
    // search, over the engine's storage, is test/collect/same-file.test.ts's).
    const host = { name: 'web', coreSearchPaths: [work] };
    hostsPath = writeHostsFile(join(work, 'hosts.json'), sshd, [host]);
    ssh = connectionsTo(sshd, hostsBehind(sshd, [host]));
  });
  after(async () => {
    await ssh?.closeAll();
    await sshd?.stop();
    await podman?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('finds the cores in running and stopped containers, with what is known of them', async () => {
    const collection = await collectHost(ssh.host('web'), { now: new Date() });
    assert.deepEqual(collection.errors, []);
    const inContainers = collection.cores.filter((c) => c.container !== null);
    assert.deepEqual(
      inContainers.map((c) => [c.container, c.path, c.sizeBytes]).sort(),
      [
        [web, '/app/core', coreBytes],
        [worker, '/srv/core', null],
      ].sort(),
    );
    const finding = collection.findings.find((f) => f.title.startsWith('2 core dumps in containers'));
    assert.ok(finding, JSON.stringify(collection.findings.map((f) => f.title)));
    assert.match(finding.detail, new RegExp(`${web} /app/core \\(\\d+\\.\\d MiB, 0 min ago\\)`));
    // Podman's own accounting through the Docker API: both containers, the crashed one's layer.
    const usage = collection.findings.find((f) => f.title === 'Docker disk usage');
    assert.match(usage?.detail ?? '', /^Containers\s+2\s+1\s/m);
    const settings = collection.findings.find((f) => f.title === 'How this host writes core dumps')!;
    assert.match(settings.detail, /kernel\.core_pattern: /);
    assert.ok(collection.filesystems.some((f) => f.mount === '/'));
  });

  it('holds the collectors a policy names for an approval, with their exact command, and runs the rest', async () => {
    const collection = await collectHost(ssh.host('web'), {
      now: new Date(),
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
      report: {
        dumps: Array<{ pid: number; container: string; file: string; executable: string | null }>;
      };
    };
    assert.deepEqual(out.pullErrors, []);
    const pulled = out.pulled;
    const fromContainers = pulled.filter((p) => p.localPath.endsWith('.tar'));
    assert.equal(fromContainers.length, 2, JSON.stringify(out.pulled.map((p) => p.localPath)));
    assert.equal(pulled.length, 2, 'the two container cores, nothing on the host under the search path');
    for (const p of pulled) {
      assert.ok(existsSync(p.localPath), p.localPath);
      assert.equal(existsSync(`${p.localPath}.part`), false);
    }
    for (const p of fromContainers)
      assert.ok(p.bytes > coreBytes, 'a tar stream holds the core and its header');
    const dumps = out.report.dumps;
    assert.deepEqual(
      dumps.map((d) => d.file).sort(),
      pulled.map((p) => p.localPath).sort(),
      'every file pulled was analysed as one set',
    );
    // Read out of docker cp's tar: the program that crashed in each container, by its own pid there.
    assert.deepEqual(
      dumps.map((d) => [d.container, d.executable]),
      [
        ['tar', '/bin/crash'],
        ['tar', '/bin/crash'],
      ],
    );
    assert.ok(
      dumps.every((d) => d.pid > 1),
      'not the container init (sh), its child',
    );
  });
});
