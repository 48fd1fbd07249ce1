import pg from 'pg';
import { CodedError, ErrorCode } from '../../errors.ts';
import { assertSchemaName, type Db, type QueryResult } from '../db.ts';

/**
 * PostgreSQL through a pg.Pool. Every connection gets `search_path` set to the schema, so the SQL
 * of the store names no schema and a test can run in a schema of its own.
 */
export async function openPostgres(url: string, schema: string, options: { max?: number } = {}): Promise<Db> {
  assertSchemaName(schema);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    options: `-c search_path=${schema}`,
    // Fail fast and say so, rather than hang a webhook or a start-up.
    connectionTimeoutMillis: 5000,
  });
  // An idle client that errors (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  try {
    const client = await pool.connect();
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    } finally {
      client.release();
    }
  } catch (error) {
    await pool.end().catch(() => {});
    throw new CodedError(
      ErrorCode.StoreUnavailable,
      `cannot reach PostgreSQL at ${redactUrl(url)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const run = async <Row>(
    client: pg.Pool | pg.PoolClient,
    text: string,
    values?: readonly unknown[],
  ): Promise<QueryResult<Row>> => {
    // Several statements without parameters come back as one result each: keep the last.
    const results = (await client.query(text, values as unknown[] | undefined)) as
      | pg.QueryResult
      | pg.QueryResult[];
    const result = Array.isArray(results) ? results.at(-1) : results;
    return { rows: (result?.rows ?? []) as Row[], affectedRows: result?.rowCount ?? 0 };
  };
  const db: Db = {
    kind: 'postgres',
    schema,
    connectionString: url,
    executeSql: (text, values) => run(pool, text, values),
    async transaction(work) {
      const client = await pool.connect();
      const tx: Db = {
        kind: 'postgres',
        schema,
        executeSql: (text, values) => run(client, text, values),
        transaction: (inner) => inner(tx),
        close: async () => {},
      };
      try {
        await client.query('BEGIN');
        const result = await work(tx);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
  return db;
}

/** A database URL fit for messages: the password replaced. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1[REDACTED]@');
}
