/**
 * The database port, as in pg-boss: one method to run SQL, plus transactions, which the intake
 * needs (an alert, its incident and its audit entry commit together or not at all). Adapters for
 * PostgreSQL (pg) and PGlite live in adapters/; nothing else imports a driver.
 */

export interface QueryResult<Row> {
  rows: Row[];
  affectedRows?: number;
}

export interface Db {
  executeSql<Row = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<QueryResult<Row>>;
  /** Runs `work` in one transaction on one connection; rolls back if it throws. */
  transaction<T>(work: (tx: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** 'postgres' or 'pglite', for messages and for the few places they differ. */
  readonly kind: 'postgres' | 'pglite';
  /** The schema every table lives in (search_path is set to it). */
  readonly schema: string;
  /** Optional capability: the embedded PGlite instance, which pg-boss's fromPglite adapter takes. */
  readonly pglite?: unknown;
  /** Optional capability: the server's URL, which pg-boss connects with itself. */
  readonly connectionString?: string;
}

/** Schema names go into SQL text (search_path, advisory lock keys): only plain identifiers. */
export function assertSchemaName(schema: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(`schema name "${schema}" must be a lower-case identifier (letters, digits, _)`);
  }
}
