/**
 * Writes src/runners/sql-catalog.json, the SQL gate's allowlist, from a PostgreSQL server's own
 * catalog (DATABASE_URL): which built-in functions, operators and types an approved statement may
 * use. Run it against the server major version the bot's databases run (15 today):
 *
 *   DATABASE_URL=postgres://… node scripts/write-sql-catalog.ts
 *
 * test/runners/sql-catalog.test.ts rebuilds the list from CI's server and fails when the committed
 * one differs, so the list is always the catalog's, read by the rules below, never edited by hand.
 */
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import { buildSqlCatalog, type CatalogRows } from '../src/runners/sql-catalog-rules.ts';

export async function readCatalogRows(url: string): Promise<CatalogRows> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const version = await client.query<{ v: string }>(
      `SELECT current_setting('server_version_num')::int / 10000 AS v`,
    );
    // Built-in objects are those initdb made: OIDs below FirstNormalObjectId (16384).
    const functions = await client.query(
      `SELECT n.nspname AS schema, p.proname AS name, p.prokind AS kind, p.provolatile AS volatility,
              p.proparallel AS parallel, p.prorettype::regtype::text AS returns
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.oid < 16384 AND n.nspname IN ('pg_catalog', 'information_schema')
        ORDER BY 1, 2`,
    );
    const operators = await client.query(
      `SELECT o.oprname AS name, n.nspname AS schema, p.proname AS function
         FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE o.oid < 16384 ORDER BY 1, 3`,
    );
    const types = await client.query(
      `SELECT t.typname AS name, n.nspname AS schema, fn.nspname AS "inputSchema", f.proname AS input
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         JOIN pg_proc f ON f.oid = t.typinput JOIN pg_namespace fn ON fn.oid = f.pronamespace
        WHERE t.oid < 16384 ORDER BY 1`,
    );
    const casts = await client.query(
      `SELECT c.castsource::regtype::text AS source, tn.nspname || '.' || t.typname AS target,
              n.nspname AS schema, p.proname AS function
         FROM pg_cast c JOIN pg_proc p ON p.oid = c.castfunc JOIN pg_namespace n ON n.oid = p.pronamespace
         JOIN pg_type t ON t.oid = c.casttarget JOIN pg_namespace tn ON tn.oid = t.typnamespace
        WHERE c.oid < 16384 ORDER BY 1, 2`,
    );
    return {
      serverMajor: Number(version.rows[0]!.v),
      functions: functions.rows,
      operators: operators.rows,
      types: types.rows,
      casts: casts.rows,
    } as CatalogRows;
  } finally {
    await client.end();
  }
}

if (import.meta.main) {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('set DATABASE_URL to the PostgreSQL server whose catalog decides the list');
  const catalog = buildSqlCatalog(await readCatalogRows(url));
  const out = new URL('../src/runners/sql-catalog.json', import.meta.url);
  writeFileSync(out, `${JSON.stringify(catalog, null, 1)}\n`);
  const allowed = Object.values(catalog.functions).filter((reason) => reason === '').length;
  console.log(
    `wrote ${out.pathname}: ${allowed} of ${Object.keys(catalog.functions).length} function names allowed`,
  );
}
