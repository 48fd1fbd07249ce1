import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { startBoss } from '../../src/jobs/boss.ts';
import { QUEUES } from '../../src/jobs/queues.ts';
import { createLogger } from '../../src/log.ts';
import { migrate } from '../../src/store/migrate.ts';
import { POSTGRES_URL, testDatabases } from '../helpers/db.ts';

const root = new URL('../../', import.meta.url).pathname;
const example = `${root}examples/crash-abort.core.30457.gz`;

function startWorker(schema: string): Promise<ChildProcess> {
  const child = spawn(
    `${root}node_modules/.bin/node`,
    [`${root}test/jobs/fixtures/worker-process.ts`, schema],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, DATABASE_URL: POSTGRES_URL },
    },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker process did not start in 30 s')), 30_000);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker process exited with ${code}`)));
  });
}

describe('two bot processes on one PostgreSQL', { skip: !POSTGRES_URL && 'needs DATABASE_URL' }, () => {
  it('share the queue: every job runs exactly once, and both processes work', async () => {
    const db = await testDatabases()
      .find((d) => d.name === 'postgres')!
      .open();
    const log = createLogger({ level: 'silent' });
    await migrate(db);
    const boss = await startBoss(db, log);
    const workers = await Promise.all([startWorker(db.schema), startWorker(db.schema)]);
    try {
      const { rows } = await db.executeSql<{ id: string }>(
        `INSERT INTO incidents (group_key, host, problem, title, opened_by) VALUES ('web-1:disk', 'web-1', 'disk', 'Disk', 'test') RETURNING id`,
      );
      const incidentId = Number(rows[0]!.id);
      const ids: string[] = [];
      for (let i = 0; i < 24; i++) {
        ids.push((await boss.send(QUEUES.analyzeEvidence.name, { incidentId, paths: [example] }))!);
      }
      const deadline = Date.now() + 90_000;
      for (;;) {
        const done = await db.executeSql<{ n: number }>(
          `SELECT count(*)::int AS n FROM jobs WHERE state = 'succeeded'`,
        );
        if (done.rows[0]!.n === ids.length) break;
        if (Date.now() > deadline) throw new Error(`only ${done.rows[0]!.n} of ${ids.length} jobs finished`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const runs = await db.executeSql<{ job: string; pid: string }>(
        `SELECT subject->>'job' AS job, subject->>'pid' AS pid FROM audit_log WHERE action = 'job.run'`,
      );
      const perJob = new Map<string, number>();
      for (const run of runs.rows) perJob.set(run.job, (perJob.get(run.job) ?? 0) + 1);
      assert.deepEqual([...perJob.keys()].sort(), [...ids].sort());
      assert.ok(
        [...perJob.values()].every((n) => n === 1),
        'a job ran twice',
      );
      const pids = new Set(runs.rows.map((r) => r.pid));
      assert.equal(pids.size, 2, 'both processes took jobs');
    } finally {
      for (const worker of workers) worker.kill('SIGTERM');
      await Promise.all(
        workers.map((w) => new Promise((r) => (w.exitCode === null ? w.once('exit', r) : r(null)))),
      );
      await boss.stop({ graceful: false });
      await db.close();
    }
  });
});
