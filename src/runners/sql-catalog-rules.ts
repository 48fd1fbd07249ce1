/**
 * The rules that turn a PostgreSQL server's catalog into the SQL gate's allowlist
 * (src/runners/sql-catalog.json, written by scripts/write-sql-catalog.ts). Pure: the script reads
 * the rows, these rules decide.
 *
 * A built-in function may appear in an approved statement when the catalog says it has no side
 * effects (immutable or stable, and not parallel-unsafe, which is how the server marks the stable
 * functions that assign a transaction id or change the session), unless it runs SQL or reads
 * tables it is given by name (the gate would not see what they run). Volatile functions are
 * refused, but for a reviewed list that only read (sizes, statistics, WAL positions, locks, the
 * clock, random numbers): the catalog marks them volatile because their answer changes, not
 * because they act. Everything not built in (user and extension functions) is refused by the
 * gate, since nothing here can see into it.
 */

export interface CatalogRows {
  serverMajor: number;
  functions: Array<{
    schema: string;
    name: string;
    kind: string;
    volatility: 'i' | 's' | 'v';
    parallel: 's' | 'r' | 'u';
    returns: string;
  }>;
  operators: Array<{ name: string; schema: string; function: string }>;
  types: Array<{ name: string; schema: string; inputSchema: string; input: string }>;
  /** `target` is the type's `schema.name`. */
  casts: Array<{ source: string; target: string; schema: string; function: string }>;
}

export interface SqlCatalog {
  /** The server major version the list was read from. */
  serverMajor: number;
  /** `schema.name` → '' when every built-in overload may run, else why not. */
  functions: Record<string, string>;
  /** Operator name → '' when every built-in operator of that name calls an allowed function, else why not. */
  operators: Record<string, string>;
  /** `schema.name` of a built-in type → '' when its input function and the casts to it are allowed, else why not. */
  types: Record<string, string>;
}

/** Functions that run SQL, or read a table, given to them as text or by name: the gate cannot see what they run. */
const RUNS_GIVEN_SQL = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite',
]);

/**
 * Volatile built-ins reviewed as reads only (PostgreSQL 15's source): their answer changes from
 * call to call, which is why the catalog says volatile, but they change nothing. The views an
 * on-call engineer reads (pg_locks, pg_sequences, pg_stat_*) call some of them.
 */
const VOLATILE_READS = new Set([
  'random',
  'clock_timestamp',
  'timeofday',
  'gen_random_uuid',
  'current_query',
  'pg_blocking_pids',
  'pg_safe_snapshot_blocking_pids',
  'pg_current_wal_lsn',
  'pg_current_wal_insert_lsn',
  'pg_current_wal_flush_lsn',
  'pg_last_wal_receive_lsn',
  'pg_last_wal_replay_lsn',
  'pg_last_xact_replay_timestamp',
  'pg_is_in_recovery',
  'pg_is_wal_replay_paused',
  'pg_get_wal_replay_pause_state',
  'pg_database_size',
  'pg_relation_size',
  'pg_table_size',
  'pg_indexes_size',
  'pg_total_relation_size',
  'pg_tablespace_size',
  'pg_lock_status',
  'pg_stat_have_stats',
  'pg_jit_available',
  'pg_partition_tree',
  'pg_partition_ancestors',
  'pg_xact_status',
  'txid_status',
  'pg_xact_commit_timestamp',
  'pg_xact_commit_timestamp_origin',
  'pg_last_committed_xact',
  'pg_notification_queue_usage',
  'pg_control_checkpoint',
  'pg_control_init',
  'pg_control_recovery',
  'pg_control_system',
  'pg_get_shmem_allocations',
  'pg_get_backend_memory_contexts',
  'pg_get_multixact_members',
  'pg_prepared_xact',
  'pg_sequence_last_value',
  'pg_get_wal_resource_managers',
  'pg_stat_get_recovery_prefetch',
  'pg_collation_actual_version',
  'pg_database_collation_actual_version',
  'pg_show_replication_origin_status',
]);

/** Stable functions the catalog marks parallel-unsafe that only read the session's search path. */
const UNSAFE_MARKED_READS = new Set(['current_schema', 'current_schemas']);

/** Return types of functions only the server calls (triggers, handlers): never part of a query. */
const INTERNAL_RETURNS = new Set([
  'trigger',
  'event_trigger',
  'language_handler',
  'fdw_handler',
  'index_am_handler',
  'table_am_handler',
  'tsm_handler',
]);

/** What a refused volatile built-in does, in words a reviewer reads; by name, first match wins. */
const VOLATILE_REASONS: Array<[RegExp, string]> = [
  [/^pg_create_\w*_replication_slot$/, 'creates a replication slot'],
  [/replication_slot|^pg_logical_slot_|^pg_replication_origin_/, 'consumes or changes replication slots'],
  [/^(nextval|setval|currval|lastval)$/, 'writes a sequence (the read-only transaction would refuse it)'],
  [
    /^(pg_read_file|pg_read_binary_file|pg_read_file_old|pg_ls_\w+|pg_stat_file|pg_current_logfile|pg_hba_file_rules|pg_ident_file_mappings|pg_show_all_file_settings|lo_import|lo_export)$/,
    'reads or writes the server’s files',
  ],
  [/^(lo_\w+|loread|lowrite)$/, 'reads or writes a large object'],
  [/^pg_sleep/, 'sleeps, holding its backend'],
  [/^pg_notify$/, 'sends a notification'],
  [/^(pg_(try_)?advisory_)/, 'acts on the server (takes or releases an advisory lock)'],
  [/^(set_config|setseed)$/, 'acts on the server (changes a setting of the session)'],
  [/^pg_/, 'acts on the server'],
];

/** Why one built-in overload may not run, or '' when it may. */
export function functionVerdict(row: CatalogRows['functions'][number]): string {
  if (RUNS_GIVEN_SQL.has(row.name))
    return 'runs SQL or reads tables it is given as text or by name, which the gate cannot check';
  if (INTERNAL_RETURNS.has(row.returns)) return `is called by the server only (returns ${row.returns})`;
  if (row.kind === 'p') return 'is a procedure';
  if (row.volatility === 'v') {
    if (VOLATILE_READS.has(row.name) || /^pg_stat_get_/.test(row.name)) return '';
    const known = VOLATILE_REASONS.find(([pattern]) => pattern.test(row.name))?.[1];
    return `${known ?? 'may change state'} (volatile in the catalog, not among the reviewed reads)`;
  }
  if (row.parallel === 'u' && !UNSAFE_MARKED_READS.has(row.name))
    return 'assigns a transaction id or changes the session (parallel-unsafe in the catalog)';
  return '';
}

export function buildSqlCatalog(rows: CatalogRows): SqlCatalog {
  const functions: Record<string, string> = {};
  for (const row of rows.functions) {
    const key = `${row.schema}.${row.name}`;
    // A name is allowed only when every overload is: the gate does not know which one the server picks.
    if (!functions[key]) functions[key] = functionVerdict(row);
  }
  const allowed = (schema: string, name: string) => functions[`${schema}.${name}`] === '';
  const operators: Record<string, string> = {};
  for (const row of rows.operators) {
    if (operators[row.name]) continue;
    operators[row.name] = allowed(row.schema, row.function)
      ? ''
      : `calls ${row.schema}.${row.function}, which ${functions[`${row.schema}.${row.function}`] || 'is not built in'}`;
  }
  const types: Record<string, string> = {};
  for (const row of rows.types) {
    const key = `${row.schema}.${row.name}`;
    types[key] ??= allowed(row.inputSchema, row.input)
      ? ''
      : `its input function ${row.input} is not allowed`;
  }
  for (const row of rows.casts) {
    if (allowed(row.schema, row.function)) continue;
    if (types[row.target] === '')
      types[row.target] = `the cast from ${row.source} calls ${row.function}, which is not allowed`;
  }
  const sorted = <T>(record: Record<string, T>) =>
    Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return {
    serverMajor: rows.serverMajor,
    functions: sorted(functions),
    operators: sorted(operators),
    types: sorted(types),
  };
}
