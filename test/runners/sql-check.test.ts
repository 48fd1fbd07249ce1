import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import catalog from '../../src/runners/sql-catalog.json' with { type: 'json' };
import { checkReadOnlySql } from '../../src/runners/sql-check.ts';

/** The SQL gate, on PostgreSQL's own parser: what reads passes, anything else is refused with a reason. */

const accepted = [
  'SELECT 1',
  'select * from sites where id = 42;',
  "SELECT ';' AS semi, 'DELETE FROM t' AS text -- a comment; DROP TABLE t\n",
  '/* DELETE FROM t; */ SELECT count(*) FROM integrations',
  'SELECT $$; DROP TABLE t; $$ AS dollar',
  'WITH recent AS (SELECT * FROM sites ORDER BY id DESC LIMIT 5) SELECT * FROM recent',
  'SELECT s.name FROM sites s JOIN integrations i ON i.site_id = s.id WHERE i.url LIKE $1',
  'VALUES (1, 2), (3, 4)',
  'TABLE sites',
  'EXPLAIN SELECT * FROM sites',
  'EXPLAIN (ANALYZE false, COSTS off) SELECT 1',
  'SHOW statement_timeout',
  'SELECT 1 UNION ALL SELECT 2',
  'SELECT nextvalue FROM t', // a column, not the function
  'SELECT txid_current_snapshot()', // reads
];

const refused: Array<[string, RegExp]> = [
  ['WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x', /DELETE writes/],
  ['WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x', /INSERT writes/],
  ['WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x', /UPDATE writes/],
  ['SELECT (WITH y AS (DELETE FROM t RETURNING 1) SELECT 1)', /DELETE writes/],
  ['SELECT 1; SELECT 2', /^2 statements, not one$/],
  ["SELECT ';'; DELETE FROM t", /^2 statements, not one$/],
  ['select * from t for update', /^SELECT \.\.\. FOR UPDATE takes locks$/],
  ['select * from t for share', /FOR SHARE takes locks/],
  ['select * from t for no key update nowait', /FOR NO KEY UPDATE takes locks/],
  ['select * from (select * from t for update) s', /FOR UPDATE takes locks/],
  ['SELECT 1 UNION SELECT 2 FOR KEY SHARE', /FOR KEY SHARE takes locks/],
  ['select * into t2 from t', /^SELECT INTO creates a table$/],
  ['select 1 into temp t', /SELECT INTO creates a table/],
  ['explain analyze delete from t', /EXPLAIN ANALYZE runs the statement/],
  ['explain analyze select 1', /EXPLAIN ANALYZE runs the statement/],
  ['explain (analyze on) select 1', /EXPLAIN ANALYZE/],
  ['explain (analyze 1) select 1', /EXPLAIN ANALYZE/],
  ['explain delete from t', /EXPLAIN of DELETE writes/],
  ['INSERT INTO t VALUES (1)', /^INSERT writes$/],
  ['UPDATE t SET a = 1', /^UPDATE writes$/],
  ['DELETE FROM t', /^DELETE writes$/],
  ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', /^MERGE writes$/],
  ['DROP TABLE t', /DROP removes/],
  ['TRUNCATE t', /TRUNCATE/],
  ['CREATE TABLE t (a int)', /CREATE TABLE/],
  ['CREATE TABLE t2 AS SELECT 1', /CREATE TABLE AS/],
  ["COPY t TO '/tmp/x'", /COPY/],
  ['BEGIN', /transaction command/],
  ['SET statement_timeout = 0', /SET changes settings/],
  ['LOCK TABLE t', /LOCK takes locks/],
  ['DO $$ BEGIN DELETE FROM t; END $$', /DO runs code/],
  ['CALL p()', /CALL runs/],
  ['VACUUM t', /VACUUM/],
  ['SELECT pg_terminate_backend(123)', /pg_terminate_backend\(\) acts on the server/],
  ["SELECT set_config('transaction_read_only', 'off', true)", /set_config\(\) acts/],
  ['SELECT pg_advisory_lock(1)', /pg_advisory_lock\(\) acts/],
  ["SELECT nextval('s')", /nextval\(\) writes a sequence \(the read-only transaction would refuse it\)/],
  ["SELECT pg_catalog.setval('s', 1)", /setval\(\) writes a sequence/],
  ["SELECT pg_catalog.pg_read_file('/etc/passwd')", /pg_read_file\(\) reads or writes the server’s files/],
  ["SELECT * FROM pg_ls_dir('.') d", /pg_ls_dir\(\)/],
  [
    "SELECT public.dblink_connect_u('x', 'dbname=postgres')",
    /dblink_connect_u\(\) is in schema public, not a built-in/,
  ],
  ["SELECT pg_create_logical_replication_slot('s', 'test_decoding')", /creates a replication slot/],
  ["SELECT PG_CREATE_PHYSICAL_REPLICATION_SLOT('s')", /creates a replication slot/],
  ['SELECT (SELECT pg_current_xact_id())', /pg_current_xact_id\(\) assigns a transaction id/],
  ['SELECT x FROM t WHERE pg_cancel_backend(x) IS NOT NULL', /pg_cancel_backend\(\) acts on the server/],
  ['selec 1', /^a parse error at line 1, column 1: syntax error at or near "selec"$/],
  ['SELECT 1\nFROM WHERE', /^a parse error at line 2, column 6: syntax error at or near "WHERE"$/],
  ["SELECT 'unterminated", /a parse error/],
  ['', /empty/],
  ['  ;; -- nothing', /no statement/],
];

/** Every function the security review named: refused by its bare and its schema-qualified name. */
const named = [
  'pg_read_file',
  'pg_read_binary_file',
  'pg_ls_dir',
  'pg_stat_file',
  'dblink_connect_u',
  'dblink_open',
  'dblink_fetch',
  'dblink_exec',
  'pg_stat_statements_reset',
  'pg_logical_slot_get_changes',
  'pg_logical_slot_get_binary_changes',
  'pg_replication_slot_advance',
  'pg_drop_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_create_physical_replication_slot',
  'lo_unlink',
  'lo_put',
  'lo_from_bytea',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_switch_wal',
  'pg_promote',
  'nextval',
  'setval',
  'txid_current',
  'pg_current_xact_id',
];

describe('checkReadOnlySql refuses functions by name', () => {
  for (const name of named) {
    it(`refuses ${name} and pg_catalog.${name}`, async () => {
      for (const text of [`SELECT ${name}(1)`, `SELECT pg_catalog.${name}(1)`]) {
        const verdict = await checkReadOnlySql(text);
        assert.equal(verdict.ok, false, `${text} must be refused`);
        if (!verdict.ok) assert.match(verdict.reason, new RegExp(`^${name}\\(\\) `));
      }
    });
  }
});

describe('checkReadOnlySql', () => {
  for (const text of accepted) {
    it(`accepts ${JSON.stringify(text)}`, async () => {
      assert.deepEqual(await checkReadOnlySql(text), { ok: true });
    });
  }
  for (const [text, reason] of refused) {
    it(`refuses ${JSON.stringify(text)}`, async () => {
      const verdict = await checkReadOnlySql(text);
      assert.equal(verdict.ok, false, `${text} must be refused`);
      if (!verdict.ok) assert.match(verdict.reason, reason);
    });
  }
});

/**
 * The security review's attacks and others of their kinds: functions reached through the
 * attribute syntax, functions that run SQL given as text, functions that act, take locks, notify
 * or write WAL, operators and sampling methods outside the built-ins.
 */
const attacks: Array<[string, RegExp]> = [
  [
    'SELECT pid, (pid).pg_terminate_backend FROM pg_stat_activity',
    /pg_terminate_backend\(\) called with attribute syntax/,
  ],
  ['SELECT (pg_backend_pid()).pg_cancel_backend', /pg_cancel_backend\(\) called with attribute syntax/],
  [
    'SELECT (42::bigint).pg_advisory_lock',
    /pg_advisory_lock\(\) called with attribute syntax .*advisory lock/,
  ],
  [
    'SELECT a.pg_terminate_backend FROM (SELECT pid FROM pg_stat_activity) a',
    /pg_terminate_backend\(\) called with attribute syntax/,
  ],
  ['SELECT ((1)::int).pg_sleep', /pg_sleep\(\) called with attribute syntax/],
  [
    "SELECT query_to_xml('select pg_terminate_backend(pid) from pg_stat_activity', true, true, '')",
    /query_to_xml\(\) runs SQL/,
  ],
  ["SELECT query_to_xmlschema('select 1', true, true, '')", /runs SQL/],
  ["SELECT query_to_xml_and_xmlschema('select 1', true, true, '')", /runs SQL/],
  ["SELECT cursor_to_xml('c', 1, true, true, '')", /runs SQL/],
  ["SELECT table_to_xml('t', true, true, '')", /reads tables it is given/],
  ["SELECT schema_to_xml('public', true, true, '')", /runs SQL/],
  ["SELECT database_to_xml(true, true, '')", /runs SQL/],
  ["SELECT * FROM ts_stat('select to_tsvector(pg_terminate_backend(1)::text)')", /ts_stat\(\) runs SQL/],
  ["SELECT ts_rewrite('a'::tsquery, 'select 1')", /ts_rewrite\(\) runs SQL/],
  ["SELECT set_config('statement_timeout', '0', true), pg_sleep(60)", /set_config\(\) acts on the server/],
  ["SELECT pg_sleep_for('1 hour')", /sleeps/],
  ["SELECT pg_notify('ch', 'x')", /pg_notify\(\) sends a notification/],
  ["SELECT pg_logical_emit_message(true, 'p', 'x')", /pg_logical_emit_message\(\) acts on the server/],
  ['SELECT txid_current()', /assigns a transaction id/],
  ['SELECT pg_try_advisory_xact_lock(1)', /advisory lock/],
  ['SELECT pg_advisory_unlock_all()', /advisory lock/],
  ['SELECT lo_get(1234)', /large object/],
  ['SELECT pg_stat_reset()', /acts on the server/],
  ['SELECT pg_switch_wal()', /acts on the server/],
  ['SELECT pg_log_backend_memory_contexts(1)', /acts on the server/],
  ["SELECT currval('s')", /writes a sequence/],
  ['SELECT 1 OPERATOR(public.+) 2', /operator public\.\+ is in schema public/],
  ['SELECT 1 ~~~ 2', /operator ~~~ is not a built-in operator/],
  ['SELECT * FROM t TABLESAMPLE system_rows(10)', /TABLESAMPLE system_rows is not a built-in/],
  ['SELECT myfunc(1)', /myfunc\(\) is not a built-in function known to be read-only/],
  ['SELECT "Lower"(\'A\')', /Lower\(\) is not a built-in/],
  ['EXPLAIN SELECT pg_terminate_backend(1)', /pg_terminate_backend\(\)/],
  ['SELECT x FROM t ORDER BY x USING OPERATOR(public.<)', /operator public\.< is in schema public/],
  ['SELECT 1 WHERE 1 = ANY (SELECT pg_cancel_backend(1)::int)', /pg_cancel_backend\(\)/],
  ["SELECT * FROM ROWS FROM (pg_ls_dir('.')) d", /pg_ls_dir\(\) reads or writes the server’s files/],
  ['SELECT 1::pg_catalog.trigger', /type pg_catalog\.trigger/],
];

describe('checkReadOnlySql refuses the review’s attacks and others of their kinds', () => {
  for (const [text, reason] of attacks) {
    it(`refuses ${JSON.stringify(text)}`, async () => {
      const verdict = await checkReadOnlySql(text);
      assert.equal(verdict.ok, false, `${text} must be refused`);
      if (!verdict.ok) assert.match(verdict.reason, reason);
    });
  }
});

describe('the allowlist read from the catalog', () => {
  const entries = Object.entries(catalog.functions).map(
    ([key, reason]) => [key.split('.')[1]!, reason] as const,
  );

  it('refuses every built-in function it does not allow, called and through the attribute syntax', async () => {
    const refusedNames = entries.filter(([name, reason]) => reason !== '' && /^[a-z_][a-z0-9_]*$/.test(name));
    assert.ok(refusedNames.length > 150, `${refusedNames.length} refused names`);
    for (const [name] of refusedNames) {
      for (const text of [`SELECT ${name}(1)`, `SELECT (1).${name}`, `SELECT t.${name} FROM t`]) {
        const verdict = await checkReadOnlySql(text);
        assert.equal(verdict.ok, false, `${text} must be refused`);
      }
    }
  });

  it('allows what on-call engineers read: statistics, locks, sizes, clocks, text and JSON functions', async () => {
    for (const text of [
      "SELECT pid, state, now() - query_start AS running, left(query, 200) FROM pg_stat_activity WHERE state <> 'idle'",
      'SELECT l.locktype, l.mode, l.granted, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid',
      'SELECT relname, pg_size_pretty(pg_total_relation_size(relid)) FROM pg_stat_user_tables ORDER BY 2 DESC',
      'SELECT pg_database_size(current_database()), pg_blocking_pids(1), clock_timestamp(), random() < 2',
      "SELECT c.id, c.name, f->>'url' FROM customers c, jsonb_array_elements(c.feeds) f WHERE f->>'url' ILIKE '%radio%'",
      "SELECT date_trunc('hour', created_at) h, count(*) FROM requests WHERE path ~ '^/feed' GROUP BY 1 ORDER BY 1",
      "SELECT string_agg(DISTINCT host, ', ') FILTER (WHERE ok), array_agg(id ORDER BY id) FROM t",
      'SELECT row_number() OVER (PARTITION BY a ORDER BY b), lag(b) OVER w FROM t WINDOW w AS (ORDER BY b)',
      "SELECT x::text, CAST(y AS numeric(10,2)), 'x'::regclass, current_setting('TimeZone') FROM t",
      'SELECT * FROM t TABLESAMPLE bernoulli (10)',
    ]) {
      assert.deepEqual(await checkReadOnlySql(text), { ok: true }, text);
    }
  });
});
