import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/env.ts';
import { parseSqlDatabases } from '../../src/config/sql-databases.ts';
import { CodedError } from '../../src/errors.ts';

describe('the SQL databases of the configuration', () => {
  it('reads each listed name and its URL variable', () => {
    const config = loadConfig({
      NIGHTSHIFT_SQL_DATABASES: 'reports, billing_ro',
      NIGHTSHIFT_SQL_REPORTS_URL: 'postgres://ro:pw@db1/reports',
      NIGHTSHIFT_SQL_BILLING_RO_URL: 'postgresql://ro:pw@db2/billing',
    });
    assert.deepEqual(config.sqlDatabases, [
      { name: 'reports', url: 'postgres://ro:pw@db1/reports' },
      { name: 'billing_ro', url: 'postgresql://ro:pw@db2/billing' },
    ]);
    assert.deepEqual(loadConfig({}).sqlDatabases, []);
  });

  it('names the wrong variable and never its value', () => {
    const secret = 'mysql://root:hunter2-secret@db/x';
    try {
      loadConfig({
        NIGHTSHIFT_SQL_DATABASES: 'reports,billing,bad-name,Reports',
        NIGHTSHIFT_SQL_REPORTS_URL: secret,
        PORT: '0',
      });
      assert.fail('accepted a bad configuration');
    } catch (error) {
      assert.ok(error instanceof CodedError);
      assert.match(
        error.message,
        /NIGHTSHIFT_SQL_REPORTS_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/,
      );
      assert.match(
        error.message,
        /NIGHTSHIFT_SQL_BILLING_URL: not set \(NIGHTSHIFT_SQL_DATABASES names billing\)/,
      );
      assert.match(error.message, /"bad-name" is not a database name/);
      assert.match(error.message, /"Reports" is listed twice/);
      assert.match(error.message, /PORT: must be a port number/, 'the other variables are still checked');
      assert.ok(!error.message.includes('hunter2'));
    }
    assert.deepEqual(parseSqlDatabases({ NIGHTSHIFT_SQL_DATABASES: ' , ' }), { databases: [], problems: [] });
  });
});
