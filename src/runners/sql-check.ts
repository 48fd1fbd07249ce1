import { parse } from 'libpg-query';

/**
 * The SQL gate before a proposal exists: PostgreSQL's own parser (libpg-query, as WebAssembly)
 * reads the text, and only one plain read is accepted: a SELECT (or VALUES, or a set operation
 * of them) without INTO, without row locks and without data-modifying CTEs, or an EXPLAIN of one
 * without ANALYZE (which would run it). Anything else is refused with a reason the model and the
 * reviewer can read. It is a first filter, not the guard: the runner still runs the statement
 * inside BEGIN READ ONLY with a statement timeout.
 */

type Node = Record<string, unknown>;

const WRITES = ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt'] as const;

/** The first thing in the tree a read-only statement must not hold, or undefined. */
function forbiddenIn(node: unknown): string | undefined {
  if (Array.isArray(node)) {
    for (const item of node) {
      const found = forbiddenIn(item);
      if (found) return found;
    }
    return undefined;
  }
  if (node === null || typeof node !== 'object') return undefined;
  for (const [key, value] of Object.entries(node as Node)) {
    if ((WRITES as readonly string[]).includes(key))
      return `it holds a data-modifying ${key.replace('Stmt', '').toUpperCase()}`;
    if (key === 'intoClause') return 'SELECT … INTO creates a table';
    if (key === 'lockingClause') return 'FOR UPDATE/SHARE locks rows';
    const found = forbiddenIn(value);
    if (found) return found;
  }
  return undefined;
}

function explainAnalyzes(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  return options.some((option) => {
    const def = (option as { DefElem?: { defname?: string; arg?: { String?: { sval?: string } } } }).DefElem;
    if (def?.defname !== 'analyze') return false;
    const value = def.arg?.String?.sval?.toLowerCase();
    return value === undefined || !['false', 'off', '0', 'no'].includes(value);
  });
}

export async function checkReadOnlySql(text: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  let tree: { stmts?: Array<{ stmt?: Node }> };
  try {
    tree = (await parse(text)) as typeof tree;
  } catch (error) {
    return { ok: false, reason: `PostgreSQL cannot parse it: ${(error as Error).message}` };
  }
  const statements = tree.stmts ?? [];
  if (statements.length !== 1)
    return { ok: false, reason: `it is ${statements.length} statements; only one is allowed` };
  let stmt = statements[0]!.stmt ?? {};
  const explain = stmt.ExplainStmt as { query?: Node; options?: unknown } | undefined;
  if (explain) {
    if (explainAnalyzes(explain.options)) return { ok: false, reason: 'EXPLAIN ANALYZE runs the statement' };
    stmt = explain.query ?? {};
  }
  const kind = Object.keys(stmt)[0] ?? 'nothing';
  if (kind !== 'SelectStmt')
    return { ok: false, reason: `it is a ${kind.replace(/Stmt$/, '')} statement, not a SELECT` };
  const forbidden = forbiddenIn(stmt);
  if (forbidden) return { ok: false, reason: forbidden };
  return { ok: true };
}
