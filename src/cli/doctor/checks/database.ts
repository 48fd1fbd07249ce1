import { redact } from '../../../analyze/redact.ts';
import type { Config } from '../../../config/env.ts';
import { asCodedError, StoreLockedError } from '../../../errors.ts';
import { OUTBOX_STUCK_AFTER_S } from '../../../slack/outbox-options.ts';
import type { Db } from '../../../store/db.ts';
import { appliedVersion, loadMigrations } from '../../../store/migrate.ts';
import { openStore } from '../../../store/open.ts';
import { outboxBacklog } from '../../../store/outbox.ts';
import { ping } from '../../../store/stats.ts';
import type { Check, CheckResult } from '../check.ts';

/** The store answers, with its migrations applied or to apply; when up to date, the outbox too. */
export const databaseCheck: Check = async ({ config }) => {
  try {
    const db = await openStore(config);
    try {
      return await storeState(db, config);
    } finally {
      await db.close();
    }
  } catch (error) {
    // The bot holds the embedded store while it runs; opening it a second time would corrupt it.
    if (error instanceof StoreLockedError)
      return {
        part: 'database',
        ok: true,
        detail: `embedded store in ${config.NIGHTSHIFT_DATA_DIR} is in use by the running bot (pid ${error.holderPid}); not opened, as a second process would corrupt it`,
      };
    return { part: 'database', ok: false, detail: asCodedError(error).message };
  }
};

async function storeState(db: Db, config: Config): Promise<CheckResult | CheckResult[]> {
  await ping(db);
  const have = await appliedVersion(db);
  const want = loadMigrations().length;
  const where = db.kind === 'pglite' ? `embedded store in ${config.NIGHTSHIFT_DATA_DIR}` : 'PostgreSQL';
  if (have !== want)
    return {
      part: 'database',
      ok: true,
      detail: `${where} answers; ${want - have} migration(s) to apply (the bot applies them at start, or run nightshift migrate)`,
    };
  const upToDate: CheckResult = {
    part: 'database',
    ok: true,
    detail: `${where} answers; schema ${config.DATABASE_SCHEMA} is up to date`,
  };
  return [upToDate, await outboxCheck(db)];
}

/** The Slack outbox: FAIL while a message has waited longer than OUTBOX_STUCK_AFTER_S, with the last error. */
async function outboxCheck(db: Db): Promise<CheckResult> {
  const part = 'slack outbox';
  const { pending, dead, oldestSeconds: age, lastError: error } = await outboxBacklog(db);
  const deadNote = dead > 0 ? `; ${dead} message(s) given up on (dead)` : '';
  if (age > OUTBOX_STUCK_AFTER_S)
    return {
      part,
      ok: false,
      detail: `stuck: ${pending} message(s) to post, the oldest waiting ${Math.round(age)} s${error ? ` (last error: ${redact(error).text.slice(0, 200)})` : ''}${deadNote}; is the bot running, and can it reach Slack?`,
    };
  return {
    part,
    ok: true,
    detail: `${pending} message(s) to post, none older than ${OUTBOX_STUCK_AFTER_S} s${deadNote}`,
  };
}
