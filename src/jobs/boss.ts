import { fromPglite, PgBoss } from 'pg-boss';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { QUEUES } from './queues.ts';

/**
 * pg-boss on the same database as the store: on PostgreSQL it connects itself (several bot
 * processes then share the queues and a job is fetched by one of them only, SKIP LOCKED); on the
 * embedded store it runs through its own PGlite adapter on the same instance. Its tables live in
 * a schema of their own, `<schema>_jobs`.
 *
 * Every queue is created with `notify`, and the listener is on (`useListenNotify`): a job sent by
 * any process wakes the workers of its queue at once (on PostgreSQL through LISTEN/NOTIFY on one
 * more connection, on PGlite in-process) instead of at their next poll. Polling stays as the
 * fallback; where LISTEN is not available (PgBouncer in transaction pooling mode) pg-boss warns
 * and only polls.
 */
/**
 * How often an idle worker looks for jobs, in seconds: the fallback when no notification comes,
 * and how a job whose `startAfter` has come (a retry, a busy agent's turn) is picked up. Without
 * `notifyPollingIntervalSeconds` a worker on a notify queue would poll only every 30 s.
 */
export const WORKER_POLLING = { pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 1 };

/** The queue on the store's database, not started yet: main.ts starts it as one of the bot's parts. */
export function createBoss(db: Db, log: Logger): PgBoss {
  const schema = `${db.schema}_jobs`;
  const boss =
    db.kind === 'pglite'
      ? new PgBoss({
          db: fromPglite(db.pglite as Parameters<typeof fromPglite>[0]),
          backend: 'pglite',
          schema,
          useListenNotify: true,
        })
      : new PgBoss({ connectionString: db.connectionString!, schema, max: 4, useListenNotify: true });
  boss.on('error', (error) => log.error({ err: error }, 'job queue error'));
  boss.on('warning', (warning) => log.warn({ warning }, 'job queue warning'));
  return boss;
}

/** Starts the queue and makes sure every queue exists, with `notify`. */
export async function startQueues(boss: PgBoss): Promise<void> {
  await boss.start();
  for (const queue of Object.values(QUEUES)) {
    await boss.createQueue(queue.name, { notify: true });
    // A queue an older bot created without it.
    await boss.updateQueue(queue.name, { notify: true });
  }
}

export async function startBoss(db: Db, log: Logger): Promise<PgBoss> {
  const boss = createBoss(db, log);
  await startQueues(boss);
  return boss;
}
