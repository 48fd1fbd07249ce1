import { parse } from 'libpg-query';
import catalog from './sql-catalog.json' with { type: 'json' };

/**
 * The gate every SQL text passes before it is proposed and again before it runs: PostgreSQL's own
 * parser (libpg-query, the server's grammar compiled to WebAssembly) reads it, and only one
 * statement that only reads is let through: SELECT (with VALUES and TABLE, which parse as
 * SELECT), EXPLAIN without ANALYZE of such a SELECT, and SHOW. Anything else is refused with a
 * reason a reviewer can read. Pure apart from the parser.
 *
 * What a SELECT may call is decided by an allowlist read from the server's catalog
 * (sql-catalog.json, see sql-catalog-rules.ts): every function, in every syntax that calls one
 * (a call, the attribute syntax `(x).f` and `t.f`, in FROM), every operator and every type must
 * be a built-in known to be free of side effects; anything else is refused by name, with why.
 * This text check cannot know what a name resolves to in one database (a function of the same
 * name in `public`, a view's body, a row-level policy): it returns the names it saw, and
 * sql-resolve.ts asks the target server, inside the run's transaction, before anything runs.
 */

export type SqlVerdict = { ok: true } | { ok: false; reason: string };

/** A possibly schema-qualified name as the parser gives it (unquoted identifiers already lower case). */
export interface QualifiedName {
  schema?: string;
  name: string;
}

/** Every name in a statement that the server resolves through its catalog. */
export interface SqlReferences {
  /** Called functions (calls, FROM, aggregates, window functions). */
  functions: QualifiedName[];
  /** Names used after a dot or as `(x).name`: a column, or a function called with attribute syntax. */
  attributes: string[];
  operators: QualifiedName[];
  types: QualifiedName[];
  relations: QualifiedName[];
}

const FUNCTIONS: Record<string, string> = catalog.functions;
const OPERATORS: Record<string, string> = catalog.operators;
const TYPES: Record<string, string> = catalog.types;
/** The schemas whose built-in functions a statement may name. */
const BUILTIN_SCHEMAS = ['pg_catalog', 'information_schema'];
/** TABLESAMPLE methods built into the server; extensions' ones are not known. */
const SAMPLE_METHODS = new Set(['bernoulli', 'system']);
/** The server version the allowlist was read from. */
export const SQL_CATALOG_SERVER_MAJOR = catalog.serverMajor;

/**
 * Why a built-in function may not be called, '' when it may, or undefined when no built-in of
 * that name exists (a user or extension function, which is refused too).
 */
export function builtinFunctionVerdict(name: string, schema?: string): string | undefined {
  for (const s of schema ? [schema] : BUILTIN_SCHEMAS) {
    const verdict = FUNCTIONS[`${s}.${name}`];
    if (verdict !== undefined) return verdict;
  }
  return undefined;
}

export const builtinOperatorVerdict = (name: string): string | undefined => OPERATORS[name];
export const builtinTypeVerdict = (schema: string, name: string): string | undefined =>
  TYPES[`${schema}.${name}`];

/** Why calling this function is refused, or undefined when it may be called. */
export function refusedFunction(name: string, schema?: string): string | undefined {
  if (schema && !BUILTIN_SCHEMAS.includes(schema))
    return `is in schema ${schema}, not a built-in function known to be read-only`;
  const verdict = builtinFunctionVerdict(name, schema);
  if (verdict === undefined) return 'is not a built-in function known to be read-only';
  return verdict === '' ? undefined : verdict;
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

type JsonObject = { [key: string]: Json };
const isObject = (v: Json | undefined): v is JsonObject =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** The strings of a parser name list (`[{String: {sval}}]`). */
const names = (list: Json | undefined): string[] =>
  Array.isArray(list)
    ? list.flatMap((item) =>
        isObject(item) && isObject(item.String) ? [String(item.String.sval ?? '')] : [],
      )
    : [];

const qualified = (parts: string[]): QualifiedName =>
  parts.length > 1 ? { schema: parts.at(-2)!, name: parts.at(-1)! } : { name: parts[0] ?? '' };

const display = (n: QualifiedName) => (n.schema ? `${n.schema}.${n.name}` : n.name);

/** A_Expr kinds whose name is not the operator the server calls. */
const BETWEEN = /BETWEEN/;

function lockStrength(value: Json): string {
  const text = JSON.stringify(value);
  if (text.includes('LCS_FORUPDATE')) return 'FOR UPDATE';
  if (text.includes('LCS_FORNOKEYUPDATE')) return 'FOR NO KEY UPDATE';
  if (text.includes('LCS_FORKEYSHARE')) return 'FOR KEY SHARE';
  return 'FOR SHARE';
}

/**
 * Walks a SELECT's tree: refuses writes in CTEs, locks, INTO, and every function, operator or
 * type outside the allowlist, and collects the names the server will resolve.
 */
function walk(tree: Json, refs: SqlReferences): string | undefined {
  if (Array.isArray(tree)) {
    for (const item of tree) {
      const found = walk(item, refs);
      if (found) return found;
    }
    return undefined;
  }
  if (!isObject(tree)) return undefined;
  for (const [key, value] of Object.entries(tree)) {
    const found = visit(key, value, refs) ?? walk(value, refs);
    if (found) return found;
  }
  return undefined;
}

/** The reason a node is refused, collecting what it names; undefined to go on into its children. */
function visit(key: string, value: Json, refs: SqlReferences): string | undefined {
  if (key === 'InsertStmt' || key === 'UpdateStmt' || key === 'DeleteStmt' || key === 'MergeStmt')
    return `a WITH clause containing ${describeStatement(key)}`;
  if (key === 'lockingClause' && Array.isArray(value) && value.length > 0)
    return `SELECT ... ${lockStrength(value)} takes locks`;
  if (key === 'intoClause' && value) return 'SELECT INTO creates a table';
  if (!isObject(value)) return undefined;
  switch (key) {
    case 'FuncCall': {
      const fn = qualified(names(value.funcname));
      const why = refusedFunction(fn.name, fn.schema);
      if (why) return `${fn.name}() ${why}`;
      refs.functions.push(fn);
      return undefined;
    }
    case 'ColumnRef':
    case 'A_Indirection': {
      // `t.f` and `(x).f` call f(t) / f(x) when no column f exists: the attribute syntax for a call.
      const attributes = key === 'ColumnRef' ? names(value.fields).slice(1) : names(value.indirection);
      for (const attribute of attributes) {
        const verdict = builtinFunctionVerdict(attribute);
        if (verdict) return `${attribute}() called with attribute syntax (x.${attribute}) ${verdict}`;
        refs.attributes.push(attribute);
      }
      return undefined;
    }
    case 'A_Expr':
    case 'SubLink':
    case 'SortBy': {
      const list = key === 'A_Expr' ? value.name : key === 'SubLink' ? value.operName : value.useOp;
      const parts = names(list);
      if (parts.length === 0) return undefined;
      if (key === 'A_Expr' && BETWEEN.test(parts.join(' '))) {
        refs.operators.push({ name: '>=' }, { name: '<=' });
        return undefined;
      }
      const op = qualified(parts);
      if (op.schema && op.schema !== 'pg_catalog')
        return `operator ${display(op)} is in schema ${op.schema}, not a built-in operator known to be read-only`;
      const verdict = builtinOperatorVerdict(op.name);
      if (verdict === undefined)
        return `operator ${op.name} is not a built-in operator known to be read-only`;
      if (verdict) return `operator ${op.name} ${verdict}`;
      refs.operators.push(op);
      return undefined;
    }
    case 'TypeName':
    case 'typeName': {
      const type = qualified(names(value.names));
      if (type.schema === 'pg_catalog') {
        const verdict = builtinTypeVerdict('pg_catalog', type.name);
        if (verdict === undefined) return `type ${display(type)} is not a built-in type`;
        if (verdict) return `type ${display(type)}: ${verdict}`;
      }
      refs.types.push(type);
      return undefined;
    }
    case 'RangeVar':
      refs.relations.push({
        ...(value.schemaname ? { schema: String(value.schemaname) } : {}),
        name: String(value.relname ?? ''),
      });
      return undefined;
    case 'RangeTableSample': {
      const method = names(value.method).join('.');
      if (!SAMPLE_METHODS.has(method)) return `TABLESAMPLE ${method} is not a built-in sampling method`;
      return undefined;
    }
    default:
      return undefined;
  }
}

export type CheckedSelect = { ok: true; refs: SqlReferences } | { ok: false; reason: string };

function checkSelect(select: Json): CheckedSelect {
  const refs: SqlReferences = { functions: [], attributes: [], operators: [], types: [], relations: [] };
  const problem = walk(select, refs);
  return problem ? { ok: false, reason: problem } : { ok: true, refs };
}

const withKind = (verdict: CheckedSelect, kind: ReadKind): SqlClassification =>
  verdict.ok ? { ok: true, kind, refs: verdict.refs } : verdict;

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
/** What the gate says of a text: which kind of read and the names the server must resolve, or why not. */
export type SqlClassification =
  | { ok: true; kind: ReadKind; refs: SqlReferences }
  | { ok: false; reason: string };

export async function classifyReadOnlySql(text: string): Promise<SqlClassification> {
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
  if (node === 'VariableShowStmt')
    return {
      ok: true,
      kind: 'show',
      refs: { functions: [], attributes: [], operators: [], types: [], relations: [] },
    };
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
