import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { CodedError } from '../../src/errors.ts';
import { checkSqlOnDatabase, runReadOnlySql, WATCHDOG } from '../../src/runners/sql.ts';
import { BackendWatchdog } from '../../src/runners/sql-watchdog.ts';
import { POSTGRES_ADMIN_URL, POSTGRES_URL } from '../helpers/db.ts';
import { until } from '../helpers/wait.ts';

/**
 * The SQL gate and its limits against a real PostgreSQL, as the security review attacked them:
 * a non-superuser role (DATABASE_URL's), a victim session, and a superuser connection
 * (POSTGRES_ADMIN_URL) that looks at pg_stat_activity and pg_locks the way an operator would.
 */

const skip = POSTGRES_URL && POSTGRES_ADMIN_URL ? false : 'set DATABASE_URL and POSTGRES_ADMIN_URL';

/** The role's URL with a search path that puts the test's schema first, as a role default would. */
function withSearchPath(url: string, path: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('options', `-c search_path=${path}`);
  return parsed.toString();
}

describe('the SQL gate on the server', { skip }, () => {
  const url = POSTGRES_URL!;
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  const superuser = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  const victim = new pg.Client({ connectionString: url, application_name: 'nightshift-test-victim' });
  let victimPid = 0;
  const database = { name: 'reports', url };
  const shadowed = { name: 'reports', url: withSearchPath(url, `${schema},public`) };

  const victimAlive = async () =>
    (await superuser.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [victimPid])).rowCount === 1;

  before(async () => {
    await Promise.all([admin.connect(), superuser.connect(), victim.connect()]);
    victimPid = (await victim.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const q = (text: string) => admin.query(text);
    await q(`CREATE SCHEMA ${schema}`);
    await q(`CREATE SEQUENCE ${schema}.s`);
    await q(`CREATE TABLE ${schema}.sites (id int PRIMARY KEY, name text)`);
    await q(`INSERT INTO ${schema}.sites VALUES (1, 'radio'), (2, 'news')`);
    // Something that acts, for every way of reaching it: it kills the victim and moves a sequence.
    const body = `SELECT count(pg_terminate_backend(pid))::int + nextval('${schema}.s')::int * 0
                    FROM pg_stat_activity WHERE application_name = 'nightshift-test-victim'`;
    await q(`CREATE FUNCTION ${schema}.lower(integer) RETURNS integer LANGUAGE sql AS $f$${body}$f$`);
    await q(`CREATE FUNCTION ${schema}.act(${schema}.sites) RETURNS integer LANGUAGE sql AS $f$${body}$f$`);
    await q(`CREATE FUNCTION ${schema}.plus(integer, integer) RETURNS integer LANGUAGE sql AS $f$${body}$f$`);
    await q(`CREATE OPERATOR ${schema}.+ (FUNCTION = ${schema}.plus, LEFTARG = integer, RIGHTARG = integer)`);
    await q(`CREATE VIEW ${schema}.innocent AS SELECT id, ${schema}.lower(id) AS l FROM ${schema}.sites`);
    await q(`CREATE VIEW ${schema}.wrapper AS SELECT * FROM ${schema}.innocent`);
    await q(`CREATE VIEW ${schema}.fine AS SELECT id, upper(name) AS name FROM ${schema}.sites`);
    await q(`CREATE DOMAIN ${schema}.checked AS integer CHECK (${schema}.lower(VALUE) >= 0)`);
    await q(`CREATE TABLE ${schema}.guarded (id int)`);
    await q(`ALTER TABLE ${schema}.guarded ENABLE ROW LEVEL SECURITY`);
    await q(`CREATE POLICY p ON ${schema}.guarded USING (${schema}.lower(id) >= 0)`);
  });
  after(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await Promise.all([admin.end(), superuser.end(), victim.end().catch(() => {})]);
  });

  const refusedOnServer: Array<[string, string, RegExp]> = [
    [
      'a same-named function that overload resolution prefers',
      'SELECT lower(1)',
      /lower\(integer\) is defined in this database/,
    ],
    [
      'a function reached with attribute syntax on a row',
      'SELECT s.act FROM sites s',
      /act\(.*\) \(reachable with attribute syntax, x\.act\) is defined/,
    ],
    [
      'an operator of the same name',
      'SELECT 1 + 2',
      /operator .*\+\(integer,integer\) is defined in this database/,
    ],
    [
      'a view whose body calls it',
      'SELECT * FROM innocent',
      /the view .*innocent: .*lower\(integer\) is defined/,
    ],
    ['a view of a view', 'TABLE wrapper', /the view .*wrapper: the view .*innocent/],
    ['a domain whose CHECK calls it', 'SELECT 1::checked', /domain with CHECK constraints/],
    [
      'a row-level policy that calls it',
      'SELECT * FROM guarded',
      /a row-level policy of .*guarded: .*lower\(integer\)/,
    ],
  ];

  for (const [what, text, reason] of refusedOnServer) {
    it(`refuses ${what} before it runs, and the victim lives: ${text}`, async () => {
      await assert.rejects(runReadOnlySql({ database: shadowed, text }), (error: CodedError) => {
        assert.equal(error.code, 'nightshift_sql_refused');
        assert.match(error.message, reason);
        assert.match(error.message, /nothing ran$/);
        return true;
      });
      assert.ok(await victimAlive(), 'the victim session was not killed');
      const { rows } = await admin.query(`SELECT is_called FROM ${schema}.s`);
      assert.equal(rows[0].is_called, false, 'the sequence never moved');
    });
  }

  it('asks the database before a proposal exists, and does not block one on a database it cannot reach', async () => {
    const refused = await checkSqlOnDatabase(shadowed, 'SELECT lower(1)');
    assert.equal(refused.ok, false);
    if (!refused.ok) assert.match(refused.reason, /lower\(integer\) is defined in this database/);
    assert.deepEqual(await checkSqlOnDatabase(database, 'SELECT lower(1)'), { ok: true });
    const unreachable = await checkSqlOnDatabase(
      { name: 'gone', url: 'postgres://x:y@127.0.0.1:1/z' },
      'SELECT 1',
    );
    assert.equal(unreachable.ok, true);
    assert.match(String(unreachable.unreachable), /ECONNREFUSED/);
    assert.ok(await victimAlive());
  });

  it('runs the reads the same names allow where nothing shadows them', async () => {
    const result = await runReadOnlySql({
      database: shadowed,
      text: "SELECT f.id, f.name, upper('x') || 'y' AS u FROM fine f ORDER BY f.id",
    });
    assert.deepEqual(result.rows, [
      ['1', 'RADIO', 'Xy'],
      ['2', 'NEWS', 'Xy'],
    ]);
    const stats = await runReadOnlySql({
      database,
      text: 'SELECT count(*) > 0 AS ok FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid',
    });
    assert.deepEqual(stats.rows, [['t']]);
  });

  it('refuses the review’s attacks through the runner, and the victim lives', async () => {
    for (const text of [
      "SELECT pid, (pid).pg_terminate_backend FROM pg_stat_activity WHERE application_name = 'nightshift-test-victim'",
      "SELECT query_to_xml('select pg_terminate_backend(pid) from pg_stat_activity', true, true, '')",
      'SELECT (42::bigint).pg_advisory_lock',
      "SELECT set_config('statement_timeout', '0', true)",
    ]) {
      await assert.rejects(
        runReadOnlySql({ database, text }),
        /nightshift_sql_refused|refused before running/,
      );
    }
    assert.ok(await victimAlive());
  });

  it('leaves no backend of the role running or holding a lock past the limit', async () => {
    const started = Date.now();
    await assert.rejects(
      runReadOnlySql({
        database,
        text: 'SELECT sum(g) FROM (SELECT generate_series(1, 100000000000) AS g) s',
        timeoutMs: 500,
      }),
      /statement timeout|time limit/,
    );
    assert.ok(Date.now() - started < 500 + WATCHDOG.graceMs + WATCHDOG.terminateAfterMs + 3000);
    // The run's backend, by the statement only it ran: other test files run SQL as 'nightshift' on
    // the same server at the same time, and their backends are not this run's.
    const { rows } = await superuser.query(
      `SELECT a.pid, a.state, l.locktype FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid
        WHERE a.application_name = 'nightshift' AND a.query LIKE '%generate_series(1, 100000000000)%'
          AND a.pid <> pg_backend_pid()`,
    );
    assert.deepEqual(rows, [], 'no backend of the run is left');
  });
});

describe('the watchdog connection', { skip }, () => {
  const url = POSTGRES_URL!;
  const superuser = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  before(() => superuser.connect());
  after(() => superuser.end());

  /** A backend of the SQL role, its pid, and a fresh advisory lock key for it to hold. */
  const runawayBackend = async () => {
    const runaway = new pg.Client({ connectionString: url, application_name: 'nightshift-test-runaway' });
    runaway.on('error', () => {});
    await runaway.connect();
    const pid = (await runaway.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    return { runaway, pid, key: Math.floor(Math.random() * 1e9) };
  };

  /** As a superuser sees it: the backend is gone from pg_stat_activity and its advisory lock from pg_locks. */
  const assertGoneWithItsLock = async (pid: number, key: number) => {
    await until(
      'the backend is gone',
      async () =>
        (await superuser.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0,
      5000,
    );
    const locks = await superuser.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = $1", [
      key,
    ]);
    assert.equal(locks.rowCount, 0, 'no advisory lock is held');
  };

  it('cancels a statement that turned its own time limit off, and the lock it held is free again', async () => {
    const { runaway, pid, key } = await runawayBackend();
    await runaway.query('BEGIN');
    await runaway.query("SELECT set_config('statement_timeout', '0', true), pg_advisory_xact_lock($1)", [
      key,
    ]);
    const sleeping = runaway.query('SELECT pg_sleep(60)').catch((error: Error) => error);

    const watchdog = await BackendWatchdog.connect({
      url,
      limitMs: 300,
      terminateAfterMs: 1500,
      connectTimeoutMs: 5000,
    });
    const started = Date.now();
    watchdog.start(pid);
    const outcome = await sleeping;
    assert.match(String(outcome), /canceling statement due to user request/);
    assert.ok(Date.now() - started < 3000, `stopped after ${Date.now() - started} ms`);
    await runaway.end().catch(() => {});
    await watchdog.stop(3000);
    await assertGoneWithItsLock(pid, key);
    assert.equal(watchdog.fired, 'cancelled');
  });

  it('terminates a backend whose client went away while it kept a lock', async () => {
    const { runaway, pid, key } = await runawayBackend();
    // Idle in a transaction, holding a lock: a cancel does nothing to an idle backend.
    await runaway.query('BEGIN');
    await runaway.query('SELECT pg_advisory_xact_lock($1)', [key]);
    const watchdog = await BackendWatchdog.connect({
      url,
      limitMs: 200,
      terminateAfterMs: 200,
      connectTimeoutMs: 5000,
    });
    watchdog.start(pid);
    await watchdog.stop(500);
    await assertGoneWithItsLock(pid, key);
    assert.equal(watchdog.fired, 'terminated');
    await runaway.end().catch(() => {});
  });
});
