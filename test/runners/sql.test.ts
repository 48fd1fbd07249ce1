import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { CodedError } from '../../src/errors.ts';
import { renderSqlResult, runReadOnlySql, type SqlResult, toCsv } from '../../src/runners/sql.ts';
import { checkReadOnlySql } from '../../src/runners/sql-check.ts';
import { POSTGRES_URL } from '../helpers/db.ts';
import { freePort } from '../helpers/wait.ts';

/**
 * Approved SQL on a real PostgreSQL (DATABASE_URL; CI sets it and test/helpers/db.ts fails there
 * without it): read-only enforced by the server, the statement timeout, the row cap, CSV quoting,
 * redaction, and the URL kept out of every error.
 */

describe('running approved SQL on PostgreSQL', { skip: POSTGRES_URL ? false : 'set DATABASE_URL' }, () => {
  const url = POSTGRES_URL!;
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const database = { name: 'reports', url };
  const admin = new pg.Client({ connectionString: url });

  before(async () => {
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.query(`CREATE SEQUENCE ${schema}.s`);
    await admin.query(`CREATE TABLE ${schema}.keep (id int)`);
    await admin.query(`INSERT INTO ${schema}.keep VALUES (1)`);
    await admin.query(
      `CREATE FUNCTION ${schema}.bump() RETURNS bigint LANGUAGE sql AS 'SELECT nextval(''${schema}.s'')'`,
    );
    await admin.query(
      `CREATE TABLE ${schema}.sites (id int PRIMARY KEY, name text, feed text, api_token text)`,
    );
    await admin.query(
      `INSERT INTO ${schema}.sites VALUES
        (1, 'Radio, "Nightly"', 'http://radio.example/stream', 'tok-0123456789-plain'),
        (2, E'two\\nlines', NULL, NULL),
        (3, 'note', 'postgres://app:hunter2secret@db.internal/prod', '')`,
    );
  });
  after(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  it('returns the columns and rows in their text form', async () => {
    const result = await runReadOnlySql({
      database,
      text: `SELECT id, name, feed, id * 1.5 AS half, now() IS NOT NULL AS ok FROM ${schema}.sites ORDER BY id;`,
    });
    assert.deepEqual(result.columns, ['id', 'name', 'feed', 'half', 'ok']);
    assert.deepEqual(result.rows[0], ['1', 'Radio, "Nightly"', 'http://radio.example/stream', '1.5', 't']);
    assert.deepEqual(result.rows[1], ['2', 'two\nlines', null, '3.0', 't']);
    assert.equal(result.truncated, false);
    assert.ok(result.durationMs >= 0);
  });

  it('quotes CSV fields as RFC 4180 says', async () => {
    const result = await runReadOnlySql({
      database,
      text: `SELECT id, name, feed FROM ${schema}.sites ORDER BY id`,
    });
    assert.equal(
      toCsv(result),
      [
        'id,name,feed',
        '1,"Radio, ""Nightly""",http://radio.example/stream',
        '2,"two\nlines",',
        '3,note,postgres://app:hunter2secret@db.internal/prod',
        '',
      ].join('\r\n'),
    );
  });

  it('refuses a function of the database, which the gate cannot see into, before it runs', async () => {
    await assert.rejects(
      runReadOnlySql({ database, text: `SELECT ${schema}.bump()` }),
      (error: CodedError) => {
        assert.equal(error.code, 'nightshift_sql_refused');
        assert.match(
          error.message,
          /bump\(\) is in schema t_\w+, not a built-in function known to be read-only/,
        );
        return true;
      },
    );
    const { rows } = await admin.query(`SELECT is_called FROM ${schema}.s`);
    assert.equal(rows[0].is_called, false, 'the sequence never moved');
  });

  it('reads backslashes as the gate does where the server defaults to standard_conforming_strings off', async () => {
    // A legacy server (or a role default) ends 'a\' at the backslash-quote, so the rest of the
    // text would be a COMMIT and a DELETE outside the read-only transaction.
    const legacy = new URL(url);
    legacy.searchParams.set('options', '-c standard_conforming_strings=off');
    const text = `SELECT 'a\\', ' ; COMMIT; DELETE FROM ${schema}.keep; --'`;
    assert.deepEqual(await checkReadOnlySql(text), { ok: true }, 'the gate reads two string literals');
    const result = await runReadOnlySql({ database: { name: 'legacy', url: legacy.toString() }, text }).catch(
      (error: Error) => error,
    );
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.keep`);
    assert.equal(rows[0].n, 1, 'the row is still there');
    assert.ok(!(result instanceof Error), String(result));
    assert.deepEqual(result.rows, [['a\\', ` ; COMMIT; DELETE FROM ${schema}.keep; --`]]);
  });

  it('stops fetching at maxBytes of result text and says where it cut', async () => {
    const huge = await runReadOnlySql({ database, text: "SELECT repeat('x', 50000000)" });
    assert.equal(huge.cutAtBytes, 4 * 1024 * 1024);
    assert.deepEqual(huge.rows, [], 'a single row larger than the cap is not kept');
    assert.match(renderSqlResult(huge).summary, /cut at 4194304 bytes/);
    const many = await runReadOnlySql({
      database,
      text: "SELECT repeat('y', 1000) AS y FROM generate_series(1, 100)",
      maxBytes: 10_000,
    });
    assert.equal(many.rows.length, 9, '1 byte of column name and 9 rows of 1000 bytes fit in 10,000');
    assert.equal(many.cutAtBytes, 10_000);
    assert.equal(many.truncated, false);
    const fits = await runReadOnlySql({ database, text: "SELECT repeat('z', 1000)" });
    assert.equal(fits.cutAtBytes, undefined);
    assert.doesNotMatch(renderSqlResult(fits).summary, /cut at/);
  });

  it('refuses a text that is not one read before connecting', async () => {
    await assert.rejects(
      runReadOnlySql({ database, text: `DELETE FROM ${schema}.sites` }),
      (error: CodedError) => error.code === 'nightshift_sql_refused' && /DELETE writes/.test(error.message),
    );
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.sites`);
    assert.equal(rows[0].n, 3);
  });

  it('stops a statement at its timeout', async () => {
    const started = Date.now();
    await assert.rejects(
      runReadOnlySql({
        database,
        text: 'SELECT sum(g) FROM (SELECT generate_series(1, 100000000000) AS g) s',
        timeoutMs: 300,
      }),
      /canceling statement due to statement timeout/,
    );
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });

  it('keeps at most maxRows rows and says there were more', async () => {
    const result = await runReadOnlySql({
      database,
      text: 'SELECT g FROM generate_series(1, 50) g',
      maxRows: 10,
    });
    assert.equal(result.rows.length, 10);
    assert.equal(result.truncated, true);
    assert.deepEqual(result.rows.at(-1), ['10']);
    assert.match(renderSqlResult(result).summary, /^more than 10 rows/);
    const exact = await runReadOnlySql({
      database,
      text: 'SELECT g FROM generate_series(1, 10) g',
      maxRows: 10,
    });
    assert.equal(exact.truncated, false);
    assert.match(renderSqlResult(exact).summary, /^10 rows, 1 column/);
  });

  it('runs EXPLAIN and SHOW as they are', async () => {
    const plan = await runReadOnlySql({ database, text: `EXPLAIN SELECT * FROM ${schema}.sites` });
    assert.equal(plan.columns[0], 'QUERY PLAN');
    assert.match(plan.rows[0]![0]!, /Seq Scan/);
    const show = await runReadOnlySql({ database, text: 'SHOW transaction_read_only' });
    assert.deepEqual(show.rows, [['on']]);
  });

  it('redacts secrets in rows: by column name, by pattern, and their copies elsewhere', async () => {
    const result = await runReadOnlySql({
      database,
      text: `SELECT id, api_token, feed, 'seen: ' || coalesce(api_token, '') AS copy FROM ${schema}.sites ORDER BY id`,
    });
    const { csv, summary, redactions } = renderSqlResult(result);
    for (const text of [csv, summary]) {
      assert.ok(!text.includes('tok-0123456789-plain'), text);
      assert.ok(!text.includes('hunter2secret'), text);
      assert.match(text, /\[REDACTED\]/);
    }
    assert.match(csv, /seen: \[REDACTED\]/, 'the unnamed copy of a named secret is hidden too');
    assert.match(csv, /postgres:\/\/app:\[REDACTED\]@db\.internal\/prod/);
    assert.ok(redactions >= 3);
  });

  it('never shows the URL in an error', async () => {
    const port = await freePort();
    const closed = `postgres://nightshift_ci:pw-secret-one@127.0.0.1:${port}/nightshift_ci`;
    const wrongPassword = new URL(url);
    wrongPassword.password = 'pw-secret-two';
    const cases: Array<[string, string]> = [
      [closed, 'SELECT 1'],
      [wrongPassword.toString(), 'SELECT 1'],
      [url, 'SELECT 1/0'],
      [url, `SELECT * FROM ${schema}.missing`],
    ];
    for (const [caseUrl, text] of cases) {
      const error = await runReadOnlySql({ database: { name: 'reports', url: caseUrl }, text }).then(
        () => assert.fail(`${text} succeeded`),
        (e: Error) => e,
      );
      assert.ok(error instanceof CodedError);
      assert.match(error.message, /^database "reports": /);
      const parsed = new URL(caseUrl);
      for (const part of [caseUrl, parsed.password, `${parsed.hostname}:${parsed.port}`])
        assert.ok(!error.message.includes(part), `"${error.message}" shows ${part}`);
    }
  });
});

describe('CSV', () => {
  it('leaves plain fields alone and quotes the rest', () => {
    const result: Pick<SqlResult, 'columns' | 'rows'> = {
      columns: ['a', 'b,c'],
      rows: [
        ['plain', null],
        [' padded', 'cr\rhere'],
        ['', '"'],
      ],
    };
    assert.equal(toCsv(result), 'a,"b,c"\r\nplain,\r\n" padded","cr\rhere"\r\n,""""\r\n');
  });
});
