import type { SqlDatabase } from '../../../config/sql-databases.ts';
import { inspectSqlRole } from '../../../runners/sql-role.ts';
import type { Check, CheckResult } from '../check.ts';

/** The role approved SQL runs as is what the server enforces whatever the gate lets through. */
export const sqlRolesCheck: Check = async ({ config }) =>
  (await Promise.all(config.sqlDatabases.map(sqlRoleCheck))).flat();

async function sqlRoleCheck(database: SqlDatabase): Promise<CheckResult[]> {
  const part = `sql ${database.name}`;
  try {
    const { role, problems } = await inspectSqlRole(database);
    const said = (level: 'fail' | 'warn') =>
      problems
        .filter((p) => p.level === level)
        .map((p) => `role ${role} ${p.what}: ${p.fix}`)
        .join('; ');
    const results: CheckResult[] = [];
    if (problems.some((p) => p.level === 'fail')) results.push({ part, ok: false, detail: said('fail') });
    else
      results.push({
        part,
        ok: true,
        detail: `role ${role} is no superuser, has no replication, server-file or program rights and cannot create on its search path`,
      });
    if (problems.some((p) => p.level === 'warn'))
      results.push({ part, ok: null, warning: true, detail: said('warn') });
    return results;
  } catch (error) {
    return [{ part, ok: false, detail: `cannot connect: ${(error as Error).message}` }];
  }
}
