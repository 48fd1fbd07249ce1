import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { collectHost } from '../../src/collect/collect-host.ts';
import { hostCoresCommand, parseCoreLines } from '../../src/collect/collectors/cores.ts';
import { planPull, pullText } from '../../src/collect/pull-plan.ts';
import type { SshConnections } from '../../src/collect/ssh.ts';
import { openStorageToOthers, type Podman, startPodman } from '../helpers/podman.ts';
import { connectionsTo, hostsBehind } from '../helpers/ssh-hosts.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';

/**
 * A host at its defaults: the core search at `/`, and the engine's storage on that filesystem
 * (here a real Podman's graphroot under /tmp, on the root filesystem). Each container core is then
 * there twice, in the container's diff and as a file of its writable layer under the graphroot;
 * the collection must count and plan it once. With both storage layouts: overlay, where the
 * engine names the layer (UpperDir, `…/overlay/<id>/diff`), and vfs, where only its records do.
 */
for (const driver of ['overlay', 'vfs'] as const)
  describe(`a core found through a container and through the host search is one file (${driver})`, () => {
    let podman: Podman;
    let sshd: Sshd;
    let ssh: SshConnections;
    let web: string;
    let worker: string;

    before(async () => {
      podman = await startPodman({ driver });
      web = (await podman.crashingContainer({ dir: '/app', running: true })).slice(0, 12);
      worker = (await podman.crashingContainer({ dir: '/srv', running: false })).slice(0, 12);
      // What root sees on a real host, for the test's unprivileged ssh user: the engine's storage
      // and the cores in it (the kernel writes them 0600). Not through overlay's merged mounts,
      // where a chmod would copy the image's files up into the containers' layers.
      await openStorageToOthers(podman);
      sshd = await startSshd({ env: podman.clientEnv });
      ssh = connectionsTo(sshd, hostsBehind(sshd, [{ name: 'web' }]));
    });
    after(async () => {
      await ssh?.closeAll();
      await sshd?.stop();
      await podman?.stop();
    });

    it('finds each container core once, by device and inode, and plans to pull it once', async () => {
      // The host search alone does see both cores inside the graphroot: the double count is real.
      const raw = await ssh.host('web').exec({
        command: hostCoresCommand(),
        timeoutMs: 120_000,
        maxOutputBytes: 1024 * 1024,
      });
      const inStorage = parseCoreLines(raw.stdout).filter((c) => c.path.startsWith(`${podman.graphroot}/`));
      const layerOf = driver === 'vfs' ? /^.*\/vfs\/dir\/[0-9a-f]+/ : /^.*\/overlay\/[0-9a-f]+\/diff/;
      assert.deepEqual(inStorage.map((c) => c.path.replace(layerOf, '')).sort(), ['/app/core', '/srv/core']);

      const collection = await collectHost(ssh.host('web'), { now: new Date() });
      assert.deepEqual(collection.errors, []);
      const mine = collection.cores.filter(
        (c) => c.container === web || c.container === worker || c.path.startsWith(`${podman.graphroot}/`),
      );
      assert.deepEqual(
        mine.map((c) => [c.container, c.path]).sort(),
        [
          [web, '/app/core'],
          [worker, '/srv/core'],
        ].sort(),
      );
      // Identified as the files the host search found in the engine's storage.
      assert.deepEqual(
        mine.map((c) => c.file).sort(),
        inStorage.map((c) => `${statSync(c.path).dev}:${statSync(c.path).ino}`).sort(),
      );
      const files = collection.cores.flatMap((c) => (c.file ? [c.file] : []));
      assert.equal(new Set(files).size, files.length, 'no file twice in the whole collection');
      assert.ok(collection.findings.some((f) => f.title.startsWith('2 core dumps in containers')));
      const onHost = collection.findings.find((f) => / on the host/.test(f.title));
      assert.doesNotMatch(onHost?.detail ?? '', new RegExp(podman.graphroot));

      const plan = planPull(collection.cores, 1000);
      const text = pullText(plan.sources).split('\n');
      assert.deepEqual(
        text.filter((l) => l.startsWith(web) || l.startsWith(worker)).sort(),
        [`${web}:/app/core`, `${worker}:/srv/core`].sort(),
      );
      assert.ok(!text.some((l) => l.includes(podman.graphroot)), text.join('\n'));
    });
  });
