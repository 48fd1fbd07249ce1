import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getProposal, getRun, type Proposal } from '../../src/approvals/service.ts';
import { systemClock } from '../../src/clock.ts';
import type { SshConnections } from '../../src/collect/ssh.ts';
import type { ExecResult } from '../../src/collect/transport.ts';
import { HostsFileSchema } from '../../src/config/hosts.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { sweep } from '../../src/jobs/sweeper.ts';
import { type RunnerDeps, runProposalJob } from '../../src/jobs/workers/run-proposal.ts';
import { createLogger } from '../../src/log.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { testDatabases } from '../helpers/db.ts';
import { APPROVER, approvedProposal } from '../helpers/proposals.ts';

/**
 * Every run ends: a store or a disk that fails after the run was claimed (a pull's mkdir, an
 * INSERT, the edit of its message) fails the run, for every kind, and its proposal's message says
 * so; a run whose worker died (its heartbeat stopped) is failed by the sweeper, and the thread is
 * told; a run whose worker is alive is left to run.
 */
const log = createLogger({ level: 'silent' });
/** The sweeper's deadline for a heartbeat in these tests, in milliseconds. */
const STALE_AFTER_MS = 120_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Dies = (text: string) => boolean;

/**
 * A store that fails the statements `fails` picks, in a transaction or not, and runs everything
 * else: a lost connection, a full disk, a constraint, for one statement. With `dead`, every
 * statement after the first failure fails too, as when the bot process dies.
 */
function failingStore(db: Db, fails: Dies, options: { dead?: boolean } = {}): Db & { failed: string[] } {
  const failed: string[] = [];
  let dead = false;
  const wrap = (inner: Db): Db =>
    new Proxy(inner, {
      get(target, prop) {
        if (prop === 'failed') return failed;
        if (prop === 'executeSql')
          return (text: string, values?: readonly unknown[]) => {
            if (dead) return Promise.reject(new Error('the bot process is dead'));
            if (fails(text)) {
              failed.push(text);
              if (options.dead) dead = true;
              return Promise.reject(new Error('the store failed this statement'));
            }
            return target.executeSql(text, values);
          };
        if (prop === 'transaction')
          return <T>(work: (tx: Db) => Promise<T>) => target.transaction((tx) => work(wrap(tx)));
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  return wrap(db) as Db & { failed: string[] };
}

/** Fails the first statement that matches `pattern` once the run is claimed (its INSERT seen). */
const afterClaim = (pattern: RegExp): Dies => {
  let claimed = false;
  let done = false;
  return (text) => {
    if (/INSERT INTO runs/.test(text)) claimed = true;
    if (!claimed || done || !pattern.test(text)) return false;
    done = true;
    return true;
  };
};

/** An SSH host whose commands take `ms` and succeed; pulls are never reached in these tests. */
function slowHost(ms: number): SshConnections {
  return {
    host: () => ({
      exec: async (): Promise<ExecResult> => {
        await sleep(ms);
        return {
          stdout: 'fine\n',
          stderr: '',
          exitCode: 0,
          timedOut: false,
          truncated: false,
          durationMs: ms,
        };
      },
    }),
  } as unknown as SshConnections;
}

const hosts = HostsFileSchema.parse({
  hosts: [{ name: 'web-1', address: '127.0.0.1', user: 'nobody' }],
});

for (const database of testDatabases()) {
  describe(`every run ends, on ${database.name}`, () => {
    let db: Db;
    let work: string;
    let incidentId: number;
    let deps: RunnerDeps;

    before(async () => {
      db = await database.open();
      await migrate(db);
      work = mkdtempSync(join(tmpdir(), 'nightshift-run-finish-'));
      ({
        incident: { id: incidentId },
      } = await openIncidentByHand(db, { host: 'web-1', note: 'disk', user: APPROVER, channel: 'C1' }));
      deps = {
        now: systemClock,
        db,
        log,
        evidenceDir: join(work, 'evidence'),
        channel: '#incidents',
        send: async () => {},
        hosts,
        ssh: slowHost(0),
      };
    });
    after(async () => {
      await db.close();
      rmSync(work, { recursive: true, force: true });
    });

    const approved = (kind: Proposal['kind'], target: string, text: string): Promise<Proposal> =>
      approvedProposal(
        db,
        { incidentId, kind, target, text, why: 'test', proposedBy: 'agent' },
        '#incidents',
        { unlessApproved: true },
      );
    const body = async (key: string): Promise<string | undefined> => {
      const { rows } = await db.executeSql<{ body: unknown }>(
        'SELECT body FROM thread_messages WHERE dedup_key = $1',
        [key],
      );
      const raw = rows[0]?.body;
      return raw === undefined ? undefined : typeof raw === 'string' ? raw : JSON.stringify(raw);
    };
    /** Runs the job; what it threw, if it threw. */
    const job = (runner: RunnerDeps, p: Proposal): Promise<unknown> =>
      runProposalJob(runner, { proposalId: p.id }).then(
        () => undefined,
        (error: unknown) => error ?? 'thrown',
      );
    /**
     * The run failed, its proposal too, the thread has its reply and the message says Failed; the
     * job itself ended normally (there is nothing for a retry to do).
     */
    const assertFailed = async (p: Proposal, error: RegExp, thrown?: unknown) => {
      const run = await getRun(db, p.id);
      assert.ok(run, 'the run was claimed');
      assert.equal(run.state, 'failed', 'the run ended, failed, instead of staying running');
      assert.ok(run.finishedAt);
      assert.match(run.error ?? '', error);
      assert.equal((await getProposal(db, p.id))!.state, 'failed');
      assert.match((await body(`run:${run.id}:result`)) ?? '', error, 'the thread is told');
      const message = (await body(`proposal:${p.id}`)) ?? '';
      assert.match(message, /Failed/, 'the proposal message shows the end');
      assert.doesNotMatch(message, /Running/);
      assert.match(message, error);
      assert.equal(thrown, undefined, 'the job ended normally');
      return run;
    };

    it('fails a pull whose INSERT of an artifact fails after the claim', async () => {
      const p = await approved('pull', 'web-1', '/var/crash/core.insert');
      const store = failingStore(db, afterClaim(/INSERT INTO evidence_artifacts/));
      const thrown = await job({ ...deps, db: store }, p);
      assert.equal(store.failed.length, 1, 'the INSERT failed');
      const run = await assertFailed(p, /the store failed this statement/, thrown);
      const left = await db.executeSql<{ n: number }>(
        `SELECT count(*)::int AS n FROM evidence_artifacts WHERE run_id = $1 AND state = 'transferring'`,
        [run.id],
      );
      assert.equal(left.rows[0]!.n, 0, 'no artifact stays transferring');
      const code = await db.executeSql<{ code: string }>(
        `SELECT result->>'code' AS code FROM runs WHERE id = $1`,
        [run.id],
      );
      assert.equal(code.rows[0]!.code, 'nightshift_internal');
    });

    it('fails a pull whose evidence directory cannot be made, and a retried job runs nothing', async () => {
      const p = await approved('pull', 'web-1', '/var/crash/core.mkdir');
      const notADirectory = join(work, 'a-file');
      writeFileSync(notADirectory, 'x');
      const thrown = await job({ ...deps, evidenceDir: notADirectory }, p);
      const run = await assertFailed(p, /ENOTDIR|not a directory/, thrown);
      await runProposalJob(deps, { proposalId: p.id });
      assert.equal((await getRun(db, p.id))!.id, run.id);
      assert.equal((await getRun(db, p.id))!.state, 'failed');
    });

    for (const [kind, target, text] of [
      ['script', 'evidence', 'echo never'],
      ['script', 'web-1', 'uptime'],
      ['sql', 'reports', 'SELECT 1'],
    ] as const) {
      it(`fails a ${kind} on ${target} whose message edit fails in the store right after the claim`, async () => {
        const p = await approved(kind, target, text);
        const store = failingStore(db, afterClaim(/UPDATE thread_messages/));
        const thrown = await job({ ...deps, db: store }, p);
        assert.equal(store.failed.length, 1);
        await assertFailed(p, /the store failed this statement/, thrown);
      });
    }

    it('fails a pull whose host is not in the hosts file, saying so on the message', async () => {
      const p = await approved('pull', 'db-9', '/var/crash/core.nohost');
      await assertFailed(p, /db-9 is not in the hosts file, so nothing was pulled/, await job(deps, p));
    });

    it('fails, from the sweeper, a run whose worker died: its heartbeat stopped', async () => {
      const p = await approved('script', 'web-1', 'sleep 1; uptime');
      // The process dies at its first read after the claim: nothing more reaches the store.
      const dying = failingStore(db, afterClaim(/FROM proposals WHERE id/), { dead: true });
      await assert.rejects(
        runProposalJob({ ...deps, db: dying }, { proposalId: p.id }),
        /the store failed|the bot process is dead/,
      );
      const stuck = (await getRun(db, p.id))!;
      assert.equal(stuck.state, 'running', 'nothing could record its end');

      const sweeper = {
        now: systemClock,
        db,
        log,
        evidenceDays: 14,
        channel: '#incidents',
        runStaleAfterMs: STALE_AFTER_MS,
      };
      // A heartbeat younger than the deadline: the worker may be alive, the run is left alone.
      await sweep(sweeper, new Date(Date.now() + STALE_AFTER_MS / 2));
      assert.equal((await getRun(db, p.id))!.state, 'running');

      const later = new Date(Date.now() + STALE_AFTER_MS + 60_000);
      await sweep(sweeper, later);
      const run = (await getRun(db, p.id))!;
      assert.equal(run.state, 'failed');
      assert.match(run.error ?? '', /its worker stopped answering: no heartbeat since/);
      assert.equal((await getProposal(db, p.id))!.state, 'failed');
      assert.match((await body(`run:${run.id}:result`)) ?? '', /worker stopped answering/);
      assert.match((await body(`proposal:${p.id}`)) ?? '', /Failed/);
      const audit = await db.executeSql<{ ok: string }>(
        `SELECT subject->>'ok' AS ok FROM audit_log WHERE action = 'run.finished' AND subject->>'run' = $1`,
        [String(run.id)],
      );
      assert.deepEqual(
        audit.rows.map((r) => r.ok),
        ['false'],
      );
      // A second sweep changes nothing.
      await sweep(sweeper, later);
      assert.equal((await getRun(db, p.id))!.finishedAt!.getTime(), run.finishedAt!.getTime());
    });

    it('leaves a run whose worker keeps its heartbeat to finish, however long it takes', async () => {
      const p = await approved('script', 'web-1', 'sleep 2; uptime');
      const running = runProposalJob({ ...deps, ssh: slowHost(1500), heartbeatMs: 50 }, { proposalId: p.id });
      await sleep(700);
      const swept = await sweep(
        { now: systemClock, db, log, evidenceDays: 14, runStaleAfterMs: 400 },
        new Date(),
      );
      assert.equal(swept.abandoned, 0);
      await running;
      const run = (await getRun(db, p.id))!;
      assert.equal(run.state, 'succeeded', run.error ?? '');
    });

    it('keeps the end the sweeper recorded when a worker thought dead finishes after all', async () => {
      const p = await approved('script', 'web-1', 'sleep 1; hostname');
      const running = runProposalJob(
        { ...deps, ssh: slowHost(600), heartbeatMs: 60_000 },
        { proposalId: p.id },
      );
      await sleep(300);
      const swept = await sweep(
        { now: systemClock, db, log, evidenceDays: 14, runStaleAfterMs: 100 },
        new Date(),
      );
      assert.equal(swept.abandoned, 1);
      await running;
      const run = (await getRun(db, p.id))!;
      assert.equal(run.state, 'failed');
      assert.match(run.error ?? '', /worker stopped answering/);
      assert.match((await body(`run:${run.id}:late`)) ?? '', /exit 0.*recorded as failed/s);
      assert.equal((await getProposal(db, p.id))!.state, 'failed');
    });
  });
}
