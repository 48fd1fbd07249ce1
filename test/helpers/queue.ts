import type { TestContext } from 'node:test';
import type { PgBoss } from 'pg-boss';
import { startBoss } from '../../src/jobs/boss.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import type { Db } from '../../src/store/db.ts';
import { atEnd } from './test-end.ts';

/**
 * The job queue (pg-boss, as the bot starts it) on a test's database, stopped without waiting for
 * its jobs when the test ends, before the database it runs on is closed.
 */
export async function testBoss(
  t: TestContext,
  db: Db,
  log: Logger = createLogger({ level: 'silent' }),
): Promise<PgBoss> {
  const boss = await startBoss(db, log);
  atEnd(t, () => boss.stop({ graceful: false }));
  return boss;
}
