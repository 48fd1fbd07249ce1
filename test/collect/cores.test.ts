import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type CoreFile,
  containerCoresCommand,
  dockerUsage,
  hostCores,
  hostCoresCommand,
  parseCoreLines,
  parseLayerLines,
} from '../../src/collect/collectors/cores.ts';
import { largestDirectories } from '../../src/collect/collectors/disk.ts';
import { planPull, pullText } from '../../src/collect/pull-plan.ts';
import { execResult } from '../helpers/exec-result.ts';
import { startPodman } from '../helpers/podman.ts';

/** The core collectors' commands, run by this machine's sh: a file named core counts only when it is ELF. */

const ELF = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(4096)]);
const JSON_CORE = `{"core": true, "padding": "${'x'.repeat(4096)}"}\n`;

function sh(command: string, env: Record<string, string> = {}): string {
  const run = spawnSync('sh', ['-c', command], { encoding: 'utf8', env: { ...process.env, ...env } });
  return run.stdout;
}

describe('core dump collectors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-cores-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('counts a file named core on the host only when it starts with the ELF magic', () => {
    const host = join(dir, 'host');
    mkdirSync(join(host, 'app', 'core'), { recursive: true });
    writeFileSync(join(host, 'app', 'core.1234'), ELF);
    writeFileSync(join(host, 'app', 'core', 'core'), JSON_CORE);
    writeFileSync(join(host, 'core'), JSON_CORE);
    writeFileSync(join(host, 'core.99'), `#!/bin/sh\n${'#'.repeat(4096)}\n`);
    writeFileSync(join(host, 'tab\tcore'), ELF); // not named core: never looked at
    mkdirSync(join(host, 'odd name'));
    writeFileSync(join(host, 'odd name', 'core'), ELF);
    const lines = sh(hostCoresCommand([host]))
      .split('\n')
      .filter((l) => l.startsWith('-\t') && l.includes(host));
    const paths = lines.map((l) => l.split('\t')[4]).sort();
    assert.deepEqual(paths, [join(host, 'app', 'core.1234'), join(host, 'odd name', 'core')]);
    assert.ok(lines.every((l) => l.split('\t')[1] === String(ELF.length)));
    // Each with its device and inode, as stat gives them.
    for (const l of lines) {
      const [, , , file, path] = l.split('\t');
      assert.equal(file, `${statSync(path!).dev}:${statSync(path!).ino}`);
    }
  });

  it('counts a file named core in a container only when it starts with the ELF magic, stopped or running, through docker and through podman', async () => {
    const podman = await startPodman();
    try {
      const json = `printf '{"core": true, "padding": "%04096d"}\\n' 0`;
      const api = (
        await podman.crashingContainer({
          dir: '/srv',
          running: true,
          // A package directory named core holding a compiled (ELF) module is not a core either:
          // the real engine's diff lists directories too, which docker cp sends as a tar of them.
          prepare: `mkdir -p /srv/data /etc /srv/lib/core && ${json} > /srv/data/core && echo text > /etc/core.5 && cp /bin/crash /srv/lib/core/_speedups.so`,
        })
      ).slice(0, 12);
      const jobs = (
        await podman.crashingContainer({
          dir: '/',
          running: false,
          prepare: `mkdir -p /x && ${json} > /x/core`,
        })
      ).slice(0, 12);
      const expected = [
        [api, '/srv/core'],
        [jobs, '/core'],
      ].sort();
      const found = (env: Record<string, string>) => {
        const out = sh(containerCoresCommand, env);
        const layers = parseLayerLines(out);
        const cores = parseCoreLines(out);
        // Each core's writable layer on the host, and the core there by device and inode (this
        // test runs as root, who can read the engine's storage).
        for (const core of cores) {
          const layer = layers.find((l) => l.container === core.container);
          assert.ok(layer?.dir.startsWith(`${podman.graphroot}/vfs/dir/`), JSON.stringify(layers));
          const st = statSync(`${layer!.dir}${core.path}`);
          assert.equal(core.file, `${st.dev}:${st.ino}`);
        }
        return cores.map((c) => [c.container, c.path]).sort();
      };
      // The Docker CLI against the engine's Docker-compatible API, as on a Docker host.
      assert.deepEqual(found({ DOCKER_HOST: podman.clientEnv.DOCKER_HOST }), expected);
      // A Podman-only host: no docker on PATH (it is in /usr/local/bin here), podman's own CLI.
      assert.deepEqual(
        found({ PATH: '/usr/bin:/bin', CONTAINER_HOST: podman.clientEnv.CONTAINER_HOST }),
        expected,
      );
      // What each engine says of the layers, read by the same parser: the running one's holds its core.
      const usage = (env: Record<string, string>) =>
        dockerUsage.parse(execResult(sh(dockerUsage.command(), env)), undefined).facts?.containers as Array<{
          id: string;
          bytes: number;
        }>;
      const clients: Array<Record<string, string>> = [
        { DOCKER_HOST: podman.clientEnv.DOCKER_HOST },
        { PATH: '/usr/bin:/bin', CONTAINER_HOST: podman.clientEnv.CONTAINER_HOST },
      ];
      for (const env of clients) {
        const layers = usage(env);
        assert.deepEqual(layers.map((c) => c.id).sort(), [api, jobs].sort());
        assert.ok(
          layers.every((c) => c.bytes > 100_000),
          JSON.stringify(layers),
        );
      }
    } finally {
      await podman.stop();
    }
  });

  it('looks at several containers at once (four at a time), and every line of every one comes out whole', async () => {
    const podman = await startPodman();
    try {
      // Nine containers, some with two cores and long paths, so lines of containers looked at
      // together are written at the same moments.
      const deep = `/srv/${'d'.repeat(200)}/${'e'.repeat(200)}`;
      const made = await Promise.all(
        Array.from({ length: 9 }, (_, n) =>
          podman.crashingContainer({
            dir: n % 3 === 0 ? deep : `/srv/w${n}`,
            running: n % 2 === 0,
            ...(n % 3 === 1 ? { prepare: `mkdir -p /var/w${n} && cp /bin/crash /var/w${n}/core.${n}1` } : {}),
          }),
        ),
      );
      const ids = made.map((id) => id.slice(0, 12));
      const expected = ids
        .flatMap((id, n) => [
          [id, n % 3 === 0 ? `${deep}/core` : `/srv/w${n}/core`],
          ...(n % 3 === 1 ? [[id, `/var/w${n}/core.${n}1`]] : []),
        ])
        .sort();
      const out = sh(containerCoresCommand, { DOCKER_HOST: podman.clientEnv.DOCKER_HOST });
      const cores = parseCoreLines(out);
      assert.deepEqual(cores.map((c) => [c.container, c.path]).sort(), expected);
      assert.ok(
        cores.every((c) => c.sizeBytes !== null && c.sizeBytes > 0),
        out,
      );
      assert.deepEqual(
        parseLayerLines(out)
          .map((l) => l.container)
          .sort(),
        [...ids].sort(),
      );
      // Nothing else: each line is a core or a layer, whole.
      for (const line of out.trim().split('\n'))
        assert.match(line, /^(#layer\t[0-9a-f]{12}\t\/\S+|[0-9a-f]{12}\t\d+\t\d+\t\d+:\d+\t\/\S+)$/, line);
    } finally {
      await podman.stop();
    }
  });

  it("counts a container's core once when the host search finds it again in the engine's storage", () => {
    const now = new Date('2026-01-01T12:00:00Z');
    const t = now.getTime() / 1000;
    const container = parseCoreLines(
      [
        '#layer\ta1b2c3d4e5f6\t/var/lib/docker/overlay2/0f3e/diff',
        '#layer\tf6e5d4c3b2a1\t/var/lib/docker/overlay2/9a8b/diff',
        `a1b2c3d4e5f6\t4096\t${t}\t2049:77\t/app/core`,
        // A stopped container: no exec, so no size; its layer is not readable by the bot either.
        'f6e5d4c3b2a1\t?\t?\t?\t/srv/core',
      ].join('\n'),
    );
    const layers = parseLayerLines(
      '#layer\ta1b2c3d4e5f6\t/var/lib/docker/overlay2/0f3e/diff\n#layer\tf6e5d4c3b2a1\t/var/lib/docker/overlay2/9a8b/diff/\n',
    );
    const host = [
      `-\t4096\t${t}\t2049:77\t/var/lib/docker/overlay2/0f3e/diff/app/core`,
      `-\t4096\t${t}\t2049:78\t/var/lib/docker/overlay2/9a8b/diff/srv/core`,
      `-\t4096\t${t}\t2049:79\t/var/lib/docker/overlay2/9a8b/diff/tmp/core`,
      `-\t4096\t${t}\t2049:80\t/var/lib/docker/overlay2/1111/diff/core`,
      `-\t4096\t${t}\t2049:81\t/home/app/core`,
      `-\t4096\t${t}\t2049:81\t/home/app/core.hardlink`,
    ].join('\n');
    const out = hostCores.parse(execResult(host), { now, seen: { containerCores: container, layers } });
    assert.equal(out.facts?.sameFile, 3);
    assert.deepEqual(
      (out.facts!.cores as CoreFile[]).map((c) => [c.container, c.path]),
      [
        // In a container's layer but not in its diff's list (cut off): that container's core.
        ['f6e5d4c3b2a1', '/tmp/core'],
        // Not any container's layer (an image's, another engine's): a file on the host.
        [null, '/var/lib/docker/overlay2/1111/diff/core'],
        [null, '/home/app/core'],
      ],
    );
    assert.match(out.findings[0]!.title, /^2 core dumps on the host/);
    const plan = planPull([...container, ...(out.facts!.cores as CoreFile[])]);
    assert.deepEqual(pullText(plan.sources).split('\n').sort(), [
      '/home/app/core',
      '/var/lib/docker/overlay2/1111/diff/core',
      'a1b2c3d4e5f6:/app/core',
      'f6e5d4c3b2a1:/srv/core',
      'f6e5d4c3b2a1:/tmp/core',
    ]);
    // The plan holds one file once even when given it twice.
    assert.equal(planPull([...container, ...container]).sources.length, 2);
  });

  it('lists the newest eight and says how many more there are', () => {
    const now = new Date('2026-01-01T12:00:00Z');
    const out = Array.from(
      { length: 19 },
      (_, i) => `-\t${1024 * 1024}\t${now.getTime() / 1000 - i * 60}\t2049:${i}\t/var/crash/core.${1000 + i}`,
    ).join('\n');
    const [finding] = hostCores.parse(execResult(out), { now }).findings;
    assert.match(finding!.title, /^19 core dumps on the host/);
    const lines = finding!.detail.split('\n');
    assert.equal(lines.length, 9);
    assert.equal(lines[0], '/var/crash/core.1000 (1.0 MiB, 0 min ago)');
    assert.equal(lines[8], '+11 more');
  });

  it('says how many more directories and containers there are than it lists', () => {
    const du = Array.from({ length: 15 }, (_, i) => `${(20 - i) * 1024 * 1024}\t/var/lib/d${i}`).join('\n');
    const [dirs] = largestDirectories.parse(execResult(du), { mount: '/var' }).findings;
    assert.equal(dirs!.detail.split('\n').length, 9);
    assert.equal(dirs!.detail.split('\n').at(-1), '+7 more');
    const ps = Array.from({ length: 12 }, (_, i) => `id${i}\tapp-${i}\t${20 - i}GB (virtual 30GB)`).join(
      '\n',
    );
    const findings = dockerUsage.parse(execResult(`TYPE TOTAL\n---\n${ps}\n`), undefined).findings;
    const layers = findings.find((f) => f.title.startsWith('Container app-0'))!;
    assert.equal(layers.detail.split('\n').length, 6);
    assert.equal(layers.detail.split('\n').at(-1), '+7 more');
  });
});
