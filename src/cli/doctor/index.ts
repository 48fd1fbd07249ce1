import type { Policy } from '../../approvals/policy.ts';
import type { Config } from '../../config/env.ts';
import { loadSettings } from '../../config/settings.ts';
import { asCodedError } from '../../errors.ts';
import type { Check, CheckOptions, CheckResult } from './check.ts';
import { alertWebhooksCheck } from './checks/alert-webhooks.ts';
import { anthropicCheck } from './checks/anthropic.ts';
import { approversCheck } from './checks/approvers.ts';
import { configurationCheck } from './checks/configuration.ts';
import { databaseCheck } from './checks/database.ts';
import { sandboxLimitsCheck } from './checks/sandbox-limits.ts';
import { sandboxToolsCheck } from './checks/sandbox-tools.ts';
import { sandboxUserCheck } from './checks/sandbox-user.ts';
import { slackCheck } from './checks/slack.ts';
import { sqlRolesCheck } from './checks/sql-roles.ts';
import { sshHostsCheck } from './checks/ssh-hosts.ts';

export type { CheckOptions, CheckResult };

/** Every check, in the order doctor prints them; one file each under checks/. */
export const CHECKS: readonly Check[] = [
  configurationCheck,
  approversCheck,
  databaseCheck,
  slackCheck,
  sandboxUserCheck,
  sandboxToolsCheck,
  sandboxLimitsCheck,
  alertWebhooksCheck,
  anthropicCheck,
  sqlRolesCheck,
  sshHostsCheck,
];

export async function runChecks(
  env: Record<string, string | undefined>,
  options: CheckOptions = {},
): Promise<CheckResult[]> {
  // What serve checks before it starts, with the same code: the environment, the policy file, the
  // approvers. Doctor must not say ok to what serve then refuses.
  let config: Config;
  let policy: Policy;
  try {
    ({ config, policy } = loadSettings(env));
  } catch (error) {
    return [{ part: 'configuration', ok: false, detail: asCodedError(error).message }];
  }
  const results: CheckResult[] = [];
  for (const check of CHECKS) results.push(...[await check({ config, policy, options })].flat());
  return results;
}
