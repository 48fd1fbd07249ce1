import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
  ["SELECT public.dblink_connect_u('x', 'dbname=postgres')", /dblink_connect_u\(\) connects/],
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
