import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkReadOnlySql } from '../../src/runners/sql-check.ts';

/** The gate propose_sql asks before a proposal exists: PostgreSQL's parser, one plain read only. */
describe('checkReadOnlySql', () => {
  const reads = [
    'SELECT 1',
    "SELECT s.id FROM sites s JOIN integrations i ON i.site_id = s.id WHERE i.url = 'http://radio.example/live'",
    'WITH t AS (SELECT 1 AS x) SELECT x FROM t',
    'VALUES (1), (2)',
    'SELECT 1 UNION SELECT 2',
    'EXPLAIN SELECT * FROM sites',
    'EXPLAIN (ANALYZE false, FORMAT json) SELECT 1',
  ];
  for (const text of reads)
    it(`accepts ${text}`, async () => assert.deepEqual(await checkReadOnlySql(text), { ok: true }));

  const refused: Array<[string, RegExp]> = [
    ['DELETE FROM sites', /Delete statement, not a SELECT/],
    ['SELECT 1; DROP TABLE sites', /2 statements/],
    ['SELECT * INTO copy FROM sites', /INTO creates a table/],
    ['SELECT * FROM sites FOR UPDATE', /locks rows/],
    ['(SELECT 1) UNION (SELECT id FROM sites FOR SHARE)', /locks rows/],
    ['WITH d AS (DELETE FROM sites RETURNING *) SELECT * FROM d', /data-modifying DELETE/],
    ['WITH u AS (UPDATE sites SET x = 1 RETURNING *) SELECT 1', /data-modifying UPDATE/],
    ['EXPLAIN ANALYZE SELECT 1', /EXPLAIN ANALYZE runs the statement/],
    ['EXPLAIN DELETE FROM sites', /Delete statement/],
    ['SET statement_timeout = 0', /VariableSet statement/],
    ['COPY sites TO PROGRAM $$curl evil$$', /Copy statement/],
    ['selec 1', /cannot parse/],
    ['', /cannot parse|0 statements/],
  ];
  for (const [text, reason] of refused)
    it(`refuses ${text || '(empty)'}`, async () => {
      const result = await checkReadOnlySql(text);
      assert.equal(result.ok, false);
      assert.match((result as { reason: string }).reason, reason);
    });
});
