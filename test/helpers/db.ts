import { randomBytes } from 'node:crypto';
import { after, type TestContext } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { type Incident, openIncidentByHand } from '../../src/incidents/incidents.ts';
import { openPostgres } from '../../src/store/adapters/pg.ts';
import { fromPglite } from '../../src/store/adapters/pglite.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { atEnd } from './test-end.ts';

/**
 * The databases every store test runs on: PGlite always, and a real PostgreSQL when
 * DATABASE_URL is set (CI sets it, and fails when it is missing). Each test gets a schema of its
 * own, dropped afterwards, as pg-boss's tests do.
 */
export interface TestDatabase {
  name: 'pglite' | 'postgres';
  /** A fresh, empty schema. */
  open(): Promise<Db>;
}

export const POSTGRES_URL = process.env.DATABASE_URL;
/** A superuser on the same server, for tests that look at every backend and lock (.ci/run sets it). */
export const POSTGRES_ADMIN_URL = process.env.POSTGRES_ADMIN_URL;

if (process.env.CI === 'true' && !POSTGRES_URL) {
  throw new Error('CI must run the store tests on a real PostgreSQL: set DATABASE_URL (.ci/run does)');
}
if (process.env.CI === 'true' && !POSTGRES_ADMIN_URL) {
  throw new Error(
    'CI must check the SQL limits as a superuser sees them: set POSTGRES_ADMIN_URL (.ci/run does)',
  );
}

const freshSchema = () => `t_${randomBytes(6).toString('hex')}`;

/** One in-memory PGlite per test process (initdb takes seconds); each test a schema in it. */
let shared: Promise<PGlite> | undefined;

// Registered on the importing test file's root: the shared PGlite must not keep the process alive.
after(async () => {
  if (shared) await (await shared).close();
});

export function testDatabases(): TestDatabase[] {
  const list: TestDatabase[] = [
    {
      name: 'pglite',
      async open() {
        shared ??= PGlite.create();
        const pglite = await shared;
        const schema = freshSchema();
        return fromPglite(pglite, schema, async () => {
          await pglite.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        });
      },
    },
  ];
  if (POSTGRES_URL) {
    list.push({
      name: 'postgres',
      async open() {
        const schema = freshSchema();
        const db = await openPostgres(POSTGRES_URL, schema);
        const close = db.close.bind(db);
        return {
          ...db,
          async close() {
            await close();
            const admin = new pg.Client({ connectionString: POSTGRES_URL });
            await admin.connect();
            try {
              await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
            } finally {
              await admin.end();
            }
          },
        };
      },
    });
  }
  return list;
}

/** A fresh schema on `database` with every migration applied, closed when the test `t` ends. */
export async function migratedDb(t: TestContext, database: TestDatabase): Promise<Db> {
  const db = await database.open();
  atEnd(t, () => db.close());
  await migrate(db);
  return db;
}

type IncidentFields = Partial<Parameters<typeof openIncidentByHand>[1]>;

/**
 * A migrated database with one incident opened by hand, as most job, agent and Slack tests
 * start: on web-1 in channel C1 unless `fields` say otherwise.
 */
export async function openIncident(
  t: TestContext,
  database: TestDatabase,
  fields: IncidentFields = {},
): Promise<{ db: Db; incident: Incident }> {
  const db = await migratedDb(t, database);
  return { db, incident: await incidentIn(db, fields) };
}

/**
 * openIncident for a store the caller closes itself (a suite's `before`, or a test that closes it
 * in `finally`): a fresh migrated schema on `database`, closed here only if setting it up fails.
 */
export async function openIncidentStore(
  database: TestDatabase,
  fields: IncidentFields = {},
): Promise<{ db: Db; incident: Incident }> {
  const db = await database.open();
  try {
    await migrate(db);
    return { db, incident: await incidentIn(db, fields) };
  } catch (error) {
    await db.close();
    throw error;
  }
}

async function incidentIn(db: Db, fields: IncidentFields): Promise<Incident> {
  const { incident } = await openIncidentByHand(db, {
    host: 'web-1',
    note: 'disk',
    user: 'U0X',
    channel: 'C1',
    ...fields,
  });
  return incident;
}
