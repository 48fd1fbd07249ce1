import { parse } from 'libpg-query';

/**
 * The gate every SQL text passes before it is proposed and again before it runs: PostgreSQL's own
 * parser (libpg-query, the server's grammar compiled to WebAssembly) reads it, and only one
 * statement that only reads is let through: SELECT (with VALUES and TABLE, which parse as
 * SELECT), EXPLAIN without ANALYZE of such a SELECT, and SHOW. Anything else is refused with a
 * reason a reviewer can read. Pure apart from the parser.
 *
 * This is a check of the text, not the only defence: the runner executes inside
 * `BEGIN READ ONLY`, so a function that writes is refused by the server. Functions that act on
 * the server without writing a table (read its files, consume replication slots, cancel
 * backends) are refused here by name, and so are a few the server would refuse anyway. Nothing
 * here sees into a user-defined function: the role must not be able to do harm either.
 */

export type SqlVerdict = { ok: true } | { ok: false; reason: string };

/**
 * Functions refused by name, with what each does. Matched on the last part of the name, so
 * `pg_catalog.pg_read_file` is refused as `pg_read_file` is. Some of them (nextval, lo_put) the
 * read-only transaction refuses anyway; the gate says so before anyone approves them.
 */
const FUNCTION_GROUPS: Array<[reason: string, names: string[]]> = [
  [
    'acts on the server',
    [
      'pg_terminate_backend',
      'pg_cancel_backend',
      'pg_reload_conf',
      'pg_rotate_logfile',
      'pg_promote',
      'pg_switch_wal',
      'pg_create_restore_point',
      'pg_stat_statements_reset',
      'pg_stat_reset',
      'pg_stat_reset_shared',
      'pg_stat_reset_single_table_counters',
      'pg_stat_reset_single_function_counters',
      'pg_stat_reset_slru',
      'pg_advisory_lock',
      'pg_advisory_lock_shared',
      'pg_advisory_xact_lock',
      'pg_advisory_xact_lock_shared',
      'pg_try_advisory_lock',
      'pg_try_advisory_lock_shared',
      'pg_try_advisory_xact_lock',
      'pg_try_advisory_xact_lock_shared',
      'set_config',
    ],
  ],
  [
    'reads or writes the server’s files',
    [
      'pg_read_file',
      'pg_read_binary_file',
      'pg_ls_dir',
      'pg_stat_file',
      'pg_file_write',
      'pg_file_rename',
      'pg_file_unlink',
      'lo_import',
      'lo_export',
    ],
  ],
  [
    'connects to another database',
    [
      'dblink',
      'dblink_exec',
      'dblink_connect',
      'dblink_connect_u',
      'dblink_open',
      'dblink_fetch',
      'dblink_send_query',
    ],
  ],
  [
    'consumes or changes replication slots',
    [
      'pg_logical_slot_get_changes',
      'pg_logical_slot_get_binary_changes',
      'pg_replication_slot_advance',
      'pg_drop_replication_slot',
      'pg_copy_logical_replication_slot',
      'pg_copy_physical_replication_slot',
    ],
  ],
  ['writes a large object', ['lo_create', 'lo_creat', 'lo_unlink', 'lo_put', 'lo_from_bytea']],
  ['writes a sequence (the read-only transaction would refuse it)', ['nextval', 'setval']],
  [
    'assigns a transaction id',
    ['txid_current', 'txid_current_if_assigned', 'pg_current_xact_id', 'pg_current_xact_id_if_assigned'],
  ],
];

const FUNCTIONS = new Map(
  FUNCTION_GROUPS.flatMap(([reason, names]) => names.map((n) => [n, reason] as const)),
);

/** Why a function is refused, or undefined; `pg_create_*_replication_slot` by pattern. */
export function refusedFunction(name: string): string | undefined {
  const bare = name.toLowerCase();
  if (/^pg_create_\w*_replication_slot$/.test(bare)) return 'creates a replication slot';
  return FUNCTIONS.get(bare);
}

/** What a statement that is not a read does, in words: `INSERT writes`. */
const WRITES: Record<string, string> = {
  InsertStmt: 'INSERT writes',
  UpdateStmt: 'UPDATE writes',
  DeleteStmt: 'DELETE writes',
  MergeStmt: 'MERGE writes',
  CopyStmt: 'COPY reads or writes files and tables',
  TruncateStmt: 'TRUNCATE deletes every row',
  CreateStmt: 'CREATE TABLE changes the schema',
  CreateTableAsStmt: 'CREATE TABLE AS creates a table',
  DropStmt: 'DROP removes objects',
  AlterTableStmt: 'ALTER TABLE changes the schema',
  IndexStmt: 'CREATE INDEX changes the schema',
  GrantStmt: 'GRANT/REVOKE changes privileges',
  TransactionStmt: 'a transaction command (BEGIN, COMMIT, ROLLBACK) is not a read',
  VariableSetStmt: 'SET changes settings',
  LockStmt: 'LOCK takes locks',
  CallStmt: 'CALL runs a procedure',
  DoStmt: 'DO runs code',
  ExecuteStmt: 'EXECUTE runs a prepared statement',
  PrepareStmt: 'PREPARE creates a prepared statement',
  VacuumStmt: 'VACUUM/ANALYZE changes the database',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW writes',
  NotifyStmt: 'NOTIFY sends a message',
  ListenStmt: 'LISTEN subscribes the session',
  DeclareCursorStmt: 'DECLARE CURSOR is the runner’s own job',
};

const describeStatement = (node: string) =>
  WRITES[node] ??
  `${node
    .replace(/Stmt$/, '')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toUpperCase()} is not a plain read`;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The first reason found anywhere in a SELECT's tree: writes in CTEs, locks, INTO, acting functions. */
function problemIn(tree: Json): string | undefined {
  if (Array.isArray(tree)) {
    for (const item of tree) {
      const found = problemIn(item);
      if (found) return found;
    }
    return undefined;
  }
  if (tree === null || typeof tree !== 'object') return undefined;
  for (const [key, value] of Object.entries(tree)) {
    if (key === 'InsertStmt' || key === 'UpdateStmt' || key === 'DeleteStmt' || key === 'MergeStmt')
      return `a WITH clause containing ${describeStatement(key)}`;
    if (key === 'lockingClause' && Array.isArray(value) && value.length > 0) {
      const strength = JSON.stringify(value).includes('LCS_FORUPDATE')
        ? 'FOR UPDATE'
        : JSON.stringify(value).includes('LCS_FORNOKEYUPDATE')
          ? 'FOR NO KEY UPDATE'
          : JSON.stringify(value).includes('LCS_FORKEYSHARE')
            ? 'FOR KEY SHARE'
            : 'FOR SHARE';
      return `SELECT ... ${strength} takes locks`;
    }
    if (key === 'intoClause' && value) return 'SELECT INTO creates a table';
    if (key === 'FuncCall' && value && typeof value === 'object' && !Array.isArray(value)) {
      const names = (value.funcname as Json[] | undefined) ?? [];
      const last = names.at(-1) as { String?: { sval?: string } } | undefined;
      const name = last?.String?.sval?.toLowerCase();
      const why = name ? refusedFunction(name) : undefined;
      if (why) return `${name}() ${why}`;
    }
    const found = problemIn(value);
    if (found) return found;
  }
  return undefined;
}

function checkSelect(select: Json): SqlVerdict {
  const problem = problemIn(select);
  return problem ? { ok: false, reason: problem } : { ok: true };
}

const withKind = (verdict: SqlVerdict, kind: ReadKind) =>
  verdict.ok ? { ok: true as const, kind } : verdict;

/** Whether an EXPLAIN option list turns ANALYZE on (`ANALYZE`, `(ANALYZE)`, `(ANALYZE true)`). */
function analyzes(options: Json): boolean {
  if (!Array.isArray(options)) return false;
  return options.some((option) => {
    const def = (option as { DefElem?: { defname?: string; arg?: Json } }).DefElem;
    if (def?.defname !== 'analyze') return false;
    if (def.arg === undefined) return true;
    // `ANALYZE false|off|no|0` turns it off (the parser leaves out an Integer's zero).
    const arg = def.arg as { String?: { sval?: string }; Integer?: { ival?: number } };
    if (arg.Integer) return (arg.Integer.ival ?? 0) !== 0;
    return !['false', 'off', 'no', '0'].includes(arg.String?.sval?.toLowerCase() ?? '');
  });
}

/** Which kind of read a text is: the runner declares a cursor for a SELECT, runs EXPLAIN and SHOW as they are. */
export type ReadKind = 'select' | 'explain' | 'show';

export async function checkReadOnlySql(text: string): Promise<SqlVerdict> {
  const verdict = await classifyReadOnlySql(text);
  return verdict.ok ? { ok: true } : verdict;
}

/** checkReadOnlySql, saying which kind of read an accepted text is. */
export async function classifyReadOnlySql(
  text: string,
): Promise<{ ok: true; kind: ReadKind } | { ok: false; reason: string }> {
  if (text.trim() === '') return { ok: false, reason: 'an empty text, not a statement' };
  let tree: { stmts?: Array<{ stmt?: Record<string, Json> }> };
  try {
    tree = (await parse(text)) as unknown as typeof tree;
  } catch (error) {
    const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    const message = details?.message ?? (error as Error).message;
    const at = details?.cursorPosition;
    if (at === undefined) return { ok: false, reason: `a parse error: ${message}` };
    const before = text.slice(0, at);
    const line = before.split('\n').length;
    const column = at - before.lastIndexOf('\n');
    return { ok: false, reason: `a parse error at line ${line}, column ${column}: ${message}` };
  }
  const statements = (tree.stmts ?? []).filter((s) => s.stmt);
  if (statements.length === 0) return { ok: false, reason: 'no statement (only comments or semicolons)' };
  if (statements.length !== 1) return { ok: false, reason: `${statements.length} statements, not one` };
  const stmt = statements[0]!.stmt!;
  const [node, body] = Object.entries(stmt)[0]!;
  if (node === 'SelectStmt') return withKind(checkSelect(body), 'select');
  if (node === 'VariableShowStmt') return { ok: true, kind: 'show' };
  if (node === 'ExplainStmt') {
    const explain = body as { query?: Record<string, Json>; options?: Json };
    if (analyzes(explain.options ?? null))
      return { ok: false, reason: 'EXPLAIN ANALYZE runs the statement; use EXPLAIN without ANALYZE' };
    const [inner, innerBody] = Object.entries(explain.query ?? {})[0] ?? ['', null];
    if (inner !== 'SelectStmt') return { ok: false, reason: `EXPLAIN of ${describeStatement(inner)}` };
    return withKind(checkSelect(innerBody), 'explain');
  }
  return { ok: false, reason: describeStatement(node) };
}
