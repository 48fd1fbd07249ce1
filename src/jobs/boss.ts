import { fromPglite, PgBoss } from 'pg-boss';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { QUEUES } from './queues.ts';

/**
 * pg-boss on the same database as the store: on PostgreSQL it connects itself (several bot
 * processes then share the queues and a job is fetched by one of them only, SKIP LOCKED); on the
 * embedded store it runs through its own PGlite adapter on the same instance. Its tables live in
 * a schema of their own, `<schema>_jobs`.
 */
export async function startBoss(db: Db, log: Logger): Promise<PgBoss> {
  const schema = `${db.schema}_jobs`;
  const boss =
    db.kind === 'pglite'
      ? new PgBoss({
          db: fromPglite(db.pglite as Parameters<typeof fromPglite>[0]),
          backend: 'pglite',
          schema,
        })
      : new PgBoss({ connectionString: db.connectionString!, schema, max: 4 });
  boss.on('error', (error) => log.error({ err: error }, 'job queue error'));
  await boss.start();
  for (const queue of Object.values(QUEUES)) await boss.createQueue(queue.name);
  return boss;
}
