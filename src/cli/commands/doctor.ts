import { runChecks } from '../doctor/index.ts';
import { type CliIo, helpOnly } from '../io.ts';

export { type CheckOptions, type CheckResult, runChecks } from '../doctor/index.ts';

/**
 * `nightshift doctor`: checks each configured part and says what is wrong in plain words, so the
 * first incident is not where a typo in a token is found.
 */

export const doctorHelp = `Usage: nightshift doctor

Checks the configuration with the code serve reads it with (the environment, the policy file in
NIGHTSHIFT_POLICY and NIGHTSHIFT_APPROVERS; WARN when nobody can approve), the database, Slack
(the bot token, its scopes against manifest.yml, INCIDENT_CHANNEL and the bot's membership
there, Socket Mode's app token), the user evidence scripts run as (NIGHTSHIFT_SANDBOX_USER; WARN
when the bot is root and it is not set), whether a cgroup can bound all of a script's processes
and where (NIGHTSHIFT_SANDBOX_CGROUP), the Anthropic API key, each SSH host in the hosts file,
and the role of each SQL database (NIGHTSHIFT_SQL_DATABASES: not superuser, no replication, no
server files or programs, no CREATE on its search path; it prints the statement that fixes each),
each only when configured. Exit status 0 when everything configured works.
`;

export async function doctorCommand(
  args: string[],
  io: CliIo,
  env: Record<string, string | undefined>,
): Promise<number> {
  if (helpOnly(args)) {
    io.stdout.write(doctorHelp);
    return 0;
  }
  const results = await runChecks(env);
  for (const r of results)
    io.stdout.write(
      `${r.warning ? 'WARN' : r.ok === null ? '-' : r.ok ? 'ok' : 'FAIL'}  ${r.part}: ${r.detail}\n`,
    );
  return results.some((r) => r.ok === false) ? 1 : 0;
}
