/**
 * The databases SQL proposals may name (issue 6): `NIGHTSHIFT_SQL_DATABASES=reports,billing` lists
 * them, and each one's URL is in `NIGHTSHIFT_SQL_<NAME>_URL` (`NIGHTSHIFT_SQL_REPORTS_URL`). The
 * URL holds a password: problems name the variable, never its value, and nothing else here
 * prints it. Pure: the caller passes the environment.
 */

export interface SqlDatabase {
  /** What a proposal's target says: `reports`. */
  name: string;
  /** postgres://… Never logged, posted or put in an error. */
  url: string;
}

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,62}$/;

/** The variable that holds a database's URL. */
export const sqlUrlVariable = (name: string) => `NIGHTSHIFT_SQL_${name.toUpperCase()}_URL`;

export function parseSqlDatabases(env: Record<string, string | undefined>): {
  databases: SqlDatabase[];
  problems: string[];
} {
  const list = (env.NIGHTSHIFT_SQL_DATABASES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const databases: SqlDatabase[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const name of list) {
    if (!NAME.test(name)) {
      problems.push(
        `NIGHTSHIFT_SQL_DATABASES: "${name}" is not a database name (a letter, then letters, digits or _)`,
      );
      continue;
    }
    if (seen.has(name.toUpperCase())) {
      problems.push(`NIGHTSHIFT_SQL_DATABASES: "${name}" is listed twice`);
      continue;
    }
    seen.add(name.toUpperCase());
    const variable = sqlUrlVariable(name);
    const url = env[variable]?.trim();
    if (!url) problems.push(`${variable}: not set (NIGHTSHIFT_SQL_DATABASES names ${name})`);
    else if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url))
      problems.push(`${variable}: must be a postgres:// or postgresql:// URL`);
    else databases.push({ name, url });
  }
  return { databases, problems };
}
