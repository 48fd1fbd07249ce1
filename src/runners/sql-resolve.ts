import {
  builtinFunctionVerdict,
  builtinTypeVerdict,
  classifyReadOnlySql,
  type QualifiedName,
  type SqlReferences,
  type SqlVerdict,
} from './sql-check.ts';

/**
 * The second half of the SQL gate: what the names a statement uses resolve to in the database it
 * is about to run on, asked of that server inside the run's read-only transaction, before the
 * statement itself. The text check (sql-check.ts) allows only built-ins by name; here the server
 * says whether a name could resolve to something else, as it resolves names:
 *
 * - a function or operator of the same name in a schema on the search path (overload resolution
 *   may prefer `public.lower(integer)` to `pg_catalog.lower(text)`), or a function reached with
 *   attribute syntax (`t.f` is `f(t)` when t has no column f): any visible one not built in, or
 *   built in but not allowed, refuses the statement;
 * - a view runs its own query: its definition passes the whole gate, recursively;
 * - a table with row-level security runs its policies' expressions: they pass the gate too;
 * - a foreign table reads through a wrapper on another server: refused;
 * - a cast names a type: a type not built in may run its own input function or domain checks, and
 *   a cast this database added may call any function: refused unless known harmless.
 *
 * The role should not be able to create objects on the search path at all (`nightshift doctor`
 * checks); this is what holds when it can.
 */

/** Runs one catalog query with parameters and returns its rows. */
export type CatalogQuery = (text: string, values: unknown[]) => Promise<Array<Record<string, unknown>>>;

/** Views inside views deeper than this are refused rather than followed. */
const MAX_DEPTH = 6;

const unique = (list: string[]) => [...new Set(list)];
/** A boolean column, as the driver gives it (the runner reads every value in its text form). */
const yes = (value: unknown) => value === true || value === 't';
const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
const asText = (n: QualifiedName) => (n.schema ? `${quoteIdent(n.schema)}.` : '') + quoteIdent(n.name);

/** Checks a statement's references against the server; `seen` holds relations already checked. */
export async function checkReferencesOnServer(
  query: CatalogQuery,
  refs: SqlReferences,
  depth = 0,
  seen = new Set<string>(),
): Promise<SqlVerdict> {
  const explicitSchemas = unique(
    [...refs.functions, ...refs.operators].flatMap((n) => (n.schema ? [n.schema] : [])),
  );
  for (const check of [
    () => checkFunctions(query, refs, explicitSchemas),
    () => checkOperators(query, refs, explicitSchemas),
    () => checkTypes(query, refs.types),
    () => checkRelations(query, refs.relations, depth, seen),
  ]) {
    const verdict = await check();
    if (!verdict.ok) return verdict;
  }
  return { ok: true };
}

/**
 * Every function visible by a name the statement calls (or reaches with attribute syntax): on the
 * search path or in a schema it names.
 */
async function checkFunctions(
  query: CatalogQuery,
  refs: SqlReferences,
  explicitSchemas: string[],
): Promise<SqlVerdict> {
  const functionNames = unique([...refs.functions.map((f) => f.name), ...refs.attributes]);
  if (functionNames.length === 0) return { ok: true };
  const rows = await query(
    `SELECT n.nspname AS schema, p.proname AS name, p.oid::regprocedure::text AS signature,
            p.oid < 16384 AS builtin
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE p.proname = ANY($1::text[])
        AND (n.nspname = ANY(pg_catalog.current_schemas(true)) OR n.nspname = ANY($2::text[]))`,
    [functionNames, explicitSchemas],
  );
  for (const row of rows) {
    const attribute = !refs.functions.some((f) => f.name === row.name);
    const how = attribute ? ` (reachable with attribute syntax, x.${row.name})` : '';
    if (!yes(row.builtin))
      return refuse(
        `${row.signature}${how} is defined in this database, not a built-in known to be read-only`,
      );
    const verdict = builtinFunctionVerdict(String(row.name), String(row.schema));
    if (verdict === undefined)
      return refuse(`${row.signature}${how} is not in the allowlist read from PostgreSQL's catalog`);
    if (verdict) return refuse(`${row.signature}${how} ${verdict}`);
  }
  return { ok: true };
}

/** An operator of a name the statement uses that this database defined. */
async function checkOperators(
  query: CatalogQuery,
  refs: SqlReferences,
  explicitSchemas: string[],
): Promise<SqlVerdict> {
  const operatorNames = unique(refs.operators.map((o) => o.name));
  if (operatorNames.length === 0) return { ok: true };
  const rows = await query(
    `SELECT o.oid::regoperator::text AS signature, o.oid < 16384 AS builtin
       FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
      WHERE o.oprname = ANY($1::text[])
        AND (n.nspname = ANY(pg_catalog.current_schemas(true)) OR n.nspname = ANY($2::text[]))
        AND NOT (o.oid < 16384)`,
    [operatorNames, explicitSchemas],
  );
  if (rows[0])
    return refuse(
      `operator ${rows[0].signature} is defined in this database, not a built-in known to be read-only`,
    );
  return { ok: true };
}

/**
 * Each relation read: a foreign table is refused; a view's query and a table's row-level policies
 * pass the whole gate, recursively (each relation once, at most MAX_DEPTH deep).
 */
async function checkRelations(
  query: CatalogQuery,
  relations: QualifiedName[],
  depth: number,
  seen: Set<string>,
): Promise<SqlVerdict> {
  for (const relation of relations) {
    const [row] = await query(
      `SELECT c.oid::text AS oid, c.relkind AS kind, c.relrowsecurity AS rls,
              pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = pg_catalog.to_regclass($1)`,
      [asText(relation)],
    );
    // A name that is no relation is a CTE's (or the statement fails on its own).
    if (!row || seen.has(String(row.oid))) continue;
    seen.add(String(row.oid));
    const name = String(row.name);
    if (row.kind === 'f')
      return refuse(`${name} is a foreign table: reading it runs a wrapper on another server`);
    for (const body of await innerQueries(query, row, name)) {
      if (depth >= MAX_DEPTH) return refuse(`${name} is nested ${MAX_DEPTH} views deep; not followed`);
      const verdict = await checkSqlOnServer(query, body, depth + 1, seen);
      if (!verdict.ok)
        return refuse(
          `${row.kind === 'v' ? 'the view' : 'a row-level policy of'} ${name}: ${verdict.reason}`,
        );
    }
  }
  return { ok: true };
}

/** What reading a relation runs besides the read: a view's query, a row-level policy's expressions. */
async function innerQueries(
  query: CatalogQuery,
  row: Record<string, unknown>,
  name: string,
): Promise<string[]> {
  const inner: string[] = [];
  if (row.kind === 'v') {
    const [view] = await query('SELECT pg_catalog.pg_get_viewdef($1::oid) AS body', [row.oid]);
    inner.push(String(view?.body ?? ''));
  }
  if (yes(row.rls)) {
    const policies = await query(
      `SELECT pg_catalog.pg_get_expr(polqual, polrelid) AS qual FROM pg_catalog.pg_policy
        WHERE polrelid = $1::oid AND polqual IS NOT NULL`,
      [row.oid],
    );
    for (const policy of policies) inner.push(`SELECT 1 FROM ${name} WHERE ${policy.qual}`);
  }
  return inner;
}

/** The whole gate, the text and then the server, for a view's body or a policy's expression. */
async function checkSqlOnServer(
  query: CatalogQuery,
  text: string,
  depth: number,
  seen: Set<string>,
): Promise<SqlVerdict> {
  const verdict = await classifyReadOnlySql(text);
  if (!verdict.ok) return verdict;
  return checkReferencesOnServer(query, verdict.refs, depth, seen);
}

/**
 * A type named in a cast or a column definition list: a built-in one is judged by the allowlist;
 * an enum or a table's row type reads with built-in functions; anything else (a base type from an
 * extension, a domain with CHECK constraints, a range over such a type) may run code of its own.
 * Casts this database added that call a function are refused when they can apply unseen
 * (implicit or on assignment) or when their target is named.
 */
async function checkTypes(query: CatalogQuery, types: QualifiedName[]): Promise<SqlVerdict> {
  const named = new Set<string>();
  for (const type of types) {
    const [row] = await query(
      `SELECT t.oid::text AS oid, n.nspname AS schema, t.typname AS name, t.typtype AS kind,
              pg_catalog.format_type(t.oid, NULL) AS display, t.oid < 16384 AS builtin,
              t.typinput < 16384 AS "builtinInput", t.typelem::text AS element,
              EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid) AS checks
         FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
        WHERE t.oid = pg_catalog.to_regtype($1)`,
      [asText(type)],
    );
    if (!row) continue; // The server refuses an unknown type itself.
    named.add(String(row.oid));
    if (yes(row.builtin)) {
      const verdict = builtinTypeVerdict(String(row.schema), String(row.name));
      if (verdict === undefined) return refuse(`type ${row.display} is not in the allowlist`);
      if (verdict) return refuse(`type ${row.display}: ${verdict}`);
      continue;
    }
    if (yes(row.checks))
      return refuse(`type ${row.display} is a domain with CHECK constraints, which run code`);
    if (!['e', 'c', 'd'].includes(String(row.kind)) || !yes(row.builtinInput))
      return refuse(`type ${row.display} is defined in this database and its input function is not built in`);
  }
  const casts = await query(
    `SELECT c.castsource::regtype::text AS source, c.casttarget::regtype::text AS target,
            c.casttarget::text AS "targetOid", c.castcontext AS context, c.castfunc::regprocedure::text AS fn
       FROM pg_catalog.pg_cast c WHERE c.oid >= 16384 AND c.castfunc <> 0`,
    [],
  );
  for (const cast of casts) {
    if (cast.context !== 'e' || named.has(String(cast.targetOid)))
      return refuse(
        `this database casts ${cast.source} to ${cast.target} with ${cast.fn}, which is not known to be read-only`,
      );
  }
  return { ok: true };
}

const refuse = (reason: string): SqlVerdict => ({ ok: false, reason });
