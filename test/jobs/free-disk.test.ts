import assert from 'node:assert/strict';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getRun, type Proposal } from '../../src/approvals/service.ts';
import { systemClock } from '../../src/clock.ts';
import { parseFreeText } from '../../src/collect/free-plan.ts';
import type { SshConnections } from '../../src/collect/ssh.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { collectHostJob } from '../../src/jobs/workers/collect-host.ts';
import { type RunnerDeps, runProposalJob } from '../../src/jobs/workers/run-proposal.ts';
import { createLogger } from '../../src/log.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { latestDiskChange } from '../../src/store/records.ts';
import { type CCore, makeCCore } from '../helpers/cores.ts';
import { testDatabases } from '../helpers/db.ts';
import { openStorageToOthers, type Podman, startPodman } from '../helpers/podman.ts';
import { APPROVER, approve, approverPolicy } from '../helpers/proposals.ts';
import { runTool } from '../helpers/reference-tools.ts';
import { connectionsTo, hostsBehind } from '../helpers/ssh-hosts.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';

/**
 * Freeing the disk for real: cores written by crashing processes in a running container, a
 * stopped one and on the host are collected and pulled over a real sshd from a real Podman; the
 * `free` proposal then names exactly those files, and once approved its run deletes each one that
 * is still the file pulled (the running container's inside it, the stopped one's in its layer on
 * the host) and skips the host core that grew after the pull. The host cores are on a small ext4 of
 * their own, so df before and after shows the freed bytes exactly; the audit trail has every step.
 */
const policy = approverPolicy;
// One database is enough for a test whose subject is the host; CI's is the real PostgreSQL.
const database = testDatabases().at(-1)!;

// Both storage layouts: vfs, and overlay (a stopped container's layer is UpperDir, as on most hosts).
for (const driver of ['vfs', 'overlay'] as const)
  describe(`freeing the disk of pulled cores (${driver}, ${database.name})`, () => {
    let db: Db;
    let work: string;
    let podman: Podman;
    let sshd: Sshd;
    let ssh: SshConnections;
    let core: CCore;
    /** A host core left as pulled, on a filesystem of its own (a loop-mounted ext4): its df is exact. */
    let kept: CCore;
    let mount: string;
    let web: string;
    let worker: string;
    let incidentId: number;
    const log = createLogger({ level: process.env.TEST_LOG ?? 'silent' });

    before(async () => {
      db = await database.open();
      await migrate(db);
      work = mkdtempSync(join(tmpdir(), 'nightshift-free-'));
      chmodSync(work, 0o755);
      // The host's cores on a small ext4 of their own: nothing else writes there, so df before and
      // after shows exactly what was freed (the root filesystem is shared with other tests' writes).
      mount = join(work, 'cores');
      mkdirSync(mount);
      await runTool('truncate', ['-s', '128M', join(work, 'cores.img')]);
      await runTool('mkfs.ext4', ['-q', '-F', join(work, 'cores.img')]);
      await runTool('mount', ['-o', 'loop', join(work, 'cores.img'), mount]);
      chmodSync(mount, 0o755);
      core = await makeCCore(join(mount, 'changed'), 'abort');
      kept = await makeCCore(join(mount, 'kept'), 'abort');
      // The ssh user deletes what root would on a real host: the host cores' directories are its to write.
      for (const c of [core, kept]) {
        for (let d = dirname(c.path); d !== mount; d = dirname(d)) chmodSync(d, 0o777);
        chmodSync(c.path, 0o644);
      }
      podman = await startPodman({ driver });
      web = (await podman.crashingContainer({ dir: '/app', running: true, coreMiB: 8 })).slice(0, 12);
      worker = (await podman.crashingContainer({ dir: '/srv', running: false, coreMiB: 8 })).slice(0, 12);
      // What root sees of the engine's storage, for the unprivileged ssh user (as in same-file.test.ts),
      // not through overlay's merged mounts, where a chmod would copy the image's files up.
      await openStorageToOthers(podman);
      sshd = await startSshd({ env: podman.clientEnv });
      ssh = connectionsTo(sshd, hostsBehind(sshd, [{ name: 'web' }]), log);
      ({
        incident: { id: incidentId },
      } = await openIncidentByHand(db, { host: 'web', note: 'disk', user: APPROVER, channel: 'C1' }));
    });
    after(async () => {
      await ssh?.closeAll();
      await sshd?.stop();
      await podman?.stop();
      await db?.close();
      if (mount) await runTool('umount', [mount]).catch(() => {});
      if (work) rmSync(work, { recursive: true, force: true });
    });

    const proposals = async (kind: string) =>
      (
        await db.executeSql<{ id: string; sha256: string; text: string; target: string }>(
          `SELECT id, sha256, text, target FROM proposals WHERE incident_id = $1 AND kind = $2 ORDER BY id`,
          [incidentId, kind],
        )
      ).rows.map(
        (r) => ({ ...r, id: Number(r.id), incidentId, kind }) as unknown as Proposal & { text: string },
      );

    it('deletes the cores pulled whole and still the same, skips the one that changed, and frees their blocks', async () => {
      const hostsFile = hostsBehind(sshd, [{ name: 'web', coreSearchPaths: [mount] }]);
      // What the collect job and the runner both take: the same host, store and policy.
      const shared = { now: systemClock, db, log, hosts: hostsFile, ssh, policy, channel: 'C1' };
      const collection = await collectHostJob({ ...shared, onApproved: async () => {} }, 'job-collect-1', {
        incidentId,
        host: 'web',
      });
      assert.ok(collection);
      assert.equal(collection.cores.length, 4, JSON.stringify(collection.cores));
      const [pull] = await proposals('pull');
      assert.ok(pull);
      await approve(db, pull);
      const deps: RunnerDeps = { ...shared, evidenceDir: join(work, 'evidence'), send: async () => {} };
      await runProposalJob(deps, { proposalId: pull.id });
      assert.equal((await getRun(db, pull.id))!.state, 'succeeded');
      // The host has zstd: each core is kept as the stream it sent; these are small, so they were
      // decoded beside too, for the sha256 the host checks before deleting.
      const keptFiles = (
        await db.executeSql<{ local_path: string; kept_as: string; sha256: string; kept_sha256: string }>(
          `SELECT local_path, kept_as, sha256, kept_sha256 FROM evidence_artifacts
           WHERE incident_id = $1 AND state = 'complete'`,
          [incidentId],
        )
      ).rows;
      assert.equal(keptFiles.length, 4);
      for (const f of keptFiles) {
        assert.match(f.local_path, /\.zst$/);
        assert.equal(f.kept_as, 'compressed');
        assert.equal(readFileSync(f.local_path).readUInt32LE(0), 0xfd2fb528);
        assert.match(f.sha256, /^[0-9a-f]{64}$/);
        assert.notEqual(f.sha256, f.kept_sha256);
      }

      // The cores are home: freeing them is proposed, exactly these three files, with their sizes.
      const [freeing] = await proposals('free');
      assert.ok(freeing, 'a free proposal after the pull');
      const items = parseFreeText(freeing.text);
      assert.deepEqual(
        items.map((i) => `${i.container ?? ''}:${i.path}`).sort(),
        [`:${core.path}`, `:${kept.path}`, `${web}:/app/core`, `${worker}:/srv/core`].sort(),
      );
      const layers = new Map(collection.layers.map((l) => [l.container, l.dir]));
      const onHost = {
        web: join(layers.get(web)!, 'app/core'),
        worker: join(layers.get(worker)!, 'srv/core'),
      };
      for (const [name, path] of Object.entries(onHost)) {
        const item = items.find((i) => i.container && path.endsWith(i.path) && layers.get(i.container));
        assert.ok(item, name);
        assert.equal(statSync(path).size, items.find((i) => i.path === item.path)!.sizeBytes);
      }
      // And the guard: core_pattern here is a plain `core`, so a capped pipe handler, as a script.
      const [guard] = (await proposals('script')).filter((p) => p.text.includes('kernel.core_pattern'));
      assert.ok(guard, 'a guard script proposed');
      assert.match(
        guard.text,
        /sysctl -w 'kernel.core_pattern=\|\/usr\/local\/sbin\/nightshift-core %p %t %e'/,
      );

      // The stopped container's layer is root's on a real host; the ssh user stands in for root here.
      chmodSync(join(layers.get(worker)!, 'srv'), 0o777);
      // The host core grows after the pull: it is not the file pulled any more.
      const hostSize = statSync(core.path).size;
      appendFileSync(core.path, Buffer.alloc(4096, 1));
      const blocks = (p: string) => statSync(p).blocks * 512;
      const expectFreed = blocks(onHost.web) + blocks(onHost.worker);
      const keptBlocks = blocks(kept.path);
      const free = (path: string) => statfsSync(path).bavail * statfsSync(path).bsize;
      const freeBefore = free(mount);
      assert.ok(statSync(onHost.web).nlink === 1 && statSync(onHost.worker).nlink === 1);

      await approve(db, freeing);
      await db.executeSql(`UPDATE incidents SET root_hash = 'as posted' WHERE id = $1`, [incidentId]);
      await runProposalJob(deps, { proposalId: freeing.id });
      const run = await getRun(db, freeing.id);
      assert.ok(run);
      const stored = await db.executeSql<{ result: unknown }>('SELECT result FROM runs WHERE id = $1', [
        run.id,
      ]);
      const result = stored.rows[0]!.result as {
        freedBytes: number;
        files: Array<{ container: string | null; path: string; status: string; detail: string }>;
        disk: string[];
        diskBefore: Array<{ mount: string; availKiB: number }>;
        diskAfter: Array<{ mount: string; availKiB: number }>;
      };
      assert.equal(run.state, 'succeeded', run.error ?? JSON.stringify(result));
      const status = Object.fromEntries(result.files.map((f) => [f.container ?? f.path, f.status]));
      assert.deepEqual(status, {
        [web]: 'deleted',
        [worker]: 'deleted',
        [kept.path]: 'deleted',
        [core.path]: 'changed',
      });
      assert.match(result.files.find((f) => f.path === core.path)!.detail, /size and mtime now/);
      // The files are gone from the host's filesystem (their only links: the blocks are free), the
      // running container no longer sees its core, and the changed host core is untouched.
      assert.equal(existsSync(onHost.web), false);
      assert.equal(existsSync(onHost.worker), false);
      await assert.rejects(podman.docker(['exec', web, 'stat', '/app/core']));
      assert.equal(existsSync(kept.path), false);
      assert.equal(statSync(core.path).size, hostSize + 4096);
      // The freed bytes are real: the cores' filesystem has the kept core's blocks back, as df says
      // (measured here, and by the run's own df on the host before and after).
      const freed = free(mount) - freeBefore;
      assert.ok(keptBlocks > 64 * 1024, `${keptBlocks} bytes of blocks`);
      assert.ok(freed >= keptBlocks && freed <= keptBlocks + 64 * 1024, `${freed} freed of ${keptBlocks}`);
      const avail = (list: Array<{ mount: string; availKiB: number }>) =>
        list.find((f) => f.mount === mount)!.availKiB * 1024;
      const byDf = avail(result.diskAfter) - avail(result.diskBefore);
      assert.ok(byDf >= keptBlocks - 1024 && byDf <= keptBlocks + 64 * 1024, `df: ${byDf} of ${keptBlocks}`);
      assert.ok(
        result.disk.some((l) => l.startsWith(`${mount}: `)),
        result.disk.join('\n'),
      );
      assert.ok(expectFreed >= 16 * 1024 * 1024, `${expectFreed} bytes of blocks`);
      assert.equal(
        result.freedBytes,
        items.filter((i) => i.path !== core.path).reduce((s, i) => s + i.sizeBytes, 0),
      );
      assert.ok(result.disk.length >= 1, 'the disk before → after');
      const change = await latestDiskChange(db, incidentId);
      assert.deepEqual(change?.lines, result.disk);
      // The root is marked stale so the outbox shows the disk before → after on it.
      const root = await db.executeSql<{ root_hash: string | null }>(
        'SELECT root_hash FROM incidents WHERE id = $1',
        [incidentId],
      );
      assert.equal(root.rows[0]!.root_hash, null);

      // Every file's end is on the record, and a second job deletes nothing more.
      const audit = await db.executeSql<{ action: string; status: string }>(
        `SELECT action, subject->>'status' AS status FROM audit_log WHERE subject->>'proposal' = $1 ORDER BY id`,
        [String(freeing.id)],
      );
      const actions = audit.rows.map((r) => r.action);
      for (const a of [
        'proposal.created',
        'proposal.approved',
        'run.started',
        'run.finished',
        'run.result_posted',
      ])
        assert.ok(actions.includes(a), `${a} in ${actions.join(', ')}`);
      assert.equal(actions.filter((a) => a === 'evidence.deleted').length, 3);
      assert.equal(actions.filter((a) => a === 'evidence.not_deleted').length, 1);
      await runProposalJob(deps, { proposalId: freeing.id });
      const again = await db.executeSql<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_log WHERE subject->>'proposal' = $1 AND action LIKE 'evidence.%'`,
        [String(freeing.id)],
      );
      assert.equal(again.rows[0]!.n, 4);
    });
  });
