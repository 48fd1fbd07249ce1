import pg from 'pg';
import type { SqlDatabase } from '../config/sql-databases.ts';
import { scrubDatabaseMessage } from './sql.ts';

/**
 * What `nightshift doctor` says of the role an approved SQL statement runs as. The gate and the
 * read-only transaction are checks of what runs; the role is what the server itself enforces, so
 * it must not be able to do what the gate exists to prevent: act as superuser, stream
 * replication, read or write the server's files, run programs, signal other roles' backends,
 * or create a function or operator on its own search path that a statement would resolve to.
 */

export interface SqlRoleProblem {
  /** Refused outright (FAIL) or worth fixing (WARN). */
  level: 'fail' | 'warn';
  what: string;
  /** The statement a superuser runs to fix it. */
  fix: string;
}

export interface SqlRoleReport {
  role: string;
  problems: SqlRoleProblem[];
}

/** Predefined roles that reach past the database's tables, with what each allows. */
const POWERFUL_ROLES: Array<[string, string]> = [
  ['pg_read_server_files', "reads any file the server can (pg_read_file, COPY FROM '/…')"],
  ['pg_write_server_files', 'writes any file the server can'],
  ['pg_execute_server_program', 'runs programs on the database server (COPY … PROGRAM)'],
  ['pg_signal_backend', 'cancels and terminates other roles’ backends'],
  ['pg_write_all_data', 'writes every table'],
  ['pg_checkpoint', 'forces checkpoints'],
];

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Reads the role's attributes, memberships, settings and CREATE rights; never prints the URL. */
export async function inspectSqlRole(
  database: SqlDatabase,
  connectTimeoutMs = 10_000,
): Promise<SqlRoleReport> {
  const client = new pg.Client({
    connectionString: database.url,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: 'nightshift-doctor',
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query(
      `SELECT r.rolname AS role, r.rolsuper AS super, r.rolreplication AS replication,
              r.rolbypassrls AS bypassrls, r.rolcreaterole AS createrole,
              ARRAY(SELECT p.rolname::text FROM pg_catalog.pg_roles p
                     WHERE p.rolname = ANY($1::text[])
                       AND pg_catalog.pg_has_role(r.oid, p.oid, 'MEMBER')) AS memberships,
              ARRAY(SELECT n.nspname::text FROM pg_catalog.pg_namespace n
                     WHERE n.nspname = ANY(pg_catalog.current_schemas(false))
                       AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE')) AS "createIn",
              pg_catalog.current_setting('statement_timeout') AS "statementTimeout",
              pg_catalog.current_setting('idle_in_transaction_session_timeout') AS "idleTimeout"
         FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
      [POWERFUL_ROLES.map(([name]) => name)],
    );
    const row = rows[0];
    const role = String(row.role);
    const problems: SqlRoleProblem[] = [];
    const fail = (what: string, fix: string) => problems.push({ level: 'fail', what, fix });
    if (row.super)
      fail('is a superuser, which no check can contain', `ALTER ROLE ${quote(role)} NOSUPERUSER`);
    if (row.replication)
      fail('may stream replication and manage slots', `ALTER ROLE ${quote(role)} NOREPLICATION`);
    if (row.createrole) fail('may create and alter roles', `ALTER ROLE ${quote(role)} NOCREATEROLE`);
    for (const member of row.memberships as string[]) {
      const what = POWERFUL_ROLES.find(([name]) => name === member)?.[1] ?? '';
      fail(`is a member of ${member}: it ${what}`, `REVOKE ${member} FROM ${quote(role)}`);
    }
    for (const schema of row.createIn as string[])
      fail(
        `may create objects in ${schema}, on its own search path: a function or operator made there could be what a statement's names resolve to`,
        `REVOKE CREATE ON SCHEMA ${quote(schema)} FROM ${quote(role)}, PUBLIC`,
      );
    if (row.bypassrls)
      problems.push({
        level: 'warn',
        what: 'bypasses row-level security',
        fix: `ALTER ROLE ${quote(role)} NOBYPASSRLS`,
      });
    if (row.statementTimeout === '0' || row.idleTimeout === '0')
      problems.push({
        level: 'warn',
        what: 'has no time limits of its own (the bot sets them per run; the role’s own hold for any other client using it)',
        fix: `ALTER ROLE ${quote(role)} SET statement_timeout = '30s'; ALTER ROLE ${quote(role)} SET idle_in_transaction_session_timeout = '60s'`,
      });
    return { role, problems };
  } catch (error) {
    throw new Error(scrubDatabaseMessage((error as Error).message, database.url));
  } finally {
    await client.end().catch(() => {});
  }
}
