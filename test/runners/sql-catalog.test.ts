import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readCatalogRows } from '../../scripts/write-sql-catalog.ts';
import committed from '../../src/runners/sql-catalog.json' with { type: 'json' };
import { buildSqlCatalog, functionVerdict } from '../../src/runners/sql-catalog-rules.ts';
import { POSTGRES_URL } from '../helpers/db.ts';

/** The SQL gate's allowlist is the catalog's, read by the rules: rebuilt from CI's server, it is the committed one. */

describe('the SQL allowlist', () => {
  it('is what the rules read from the server’s catalog (run scripts/write-sql-catalog.ts when this fails)', {
    skip: POSTGRES_URL ? false : 'set DATABASE_URL',
  }, async () => {
    const rows = await readCatalogRows(POSTGRES_URL!);
    assert.equal(rows.serverMajor, committed.serverMajor, 'the list was read from another major version');
    assert.deepEqual(buildSqlCatalog(rows), committed);
  });

  it('decides by volatility, parallel safety and the reviewed lists', () => {
    const row = (name: string, volatility: 'i' | 's' | 'v', parallel: 's' | 'r' | 'u' = 's') =>
      functionVerdict({ schema: 'pg_catalog', name, kind: 'f', volatility, parallel, returns: 'integer' });
    assert.equal(row('lower', 'i'), '');
    assert.equal(row('now', 's'), '');
    assert.match(row('txid_current', 's', 'u'), /assigns a transaction id/);
    assert.equal(row('pg_relation_size', 'v'), '', 'a reviewed volatile read');
    assert.equal(row('pg_stat_get_xact_numscans', 'v'), '');
    assert.match(row('pg_terminate_backend', 'v'), /acts on the server/);
    assert.match(row('some_new_function', 'v'), /may change state/);
    assert.match(row('query_to_xml', 's'), /runs SQL/);
    assert.match(
      functionVerdict({
        schema: 'pg_catalog',
        name: 'x',
        kind: 'f',
        volatility: 'i',
        parallel: 's',
        returns: 'trigger',
      }),
      /called by the server only/,
    );
  });
});
