import type { Policy } from '../approvals/policy.ts';
import { type Config, loadConfig } from './env.ts';
import { loadPolicy } from './policy.ts';

/**
 * Everything `serve` refuses to start without, checked in one place: the environment (EnvSchema),
 * then the policy file in NIGHTSHIFT_POLICY with the approvers of NIGHTSHIFT_APPROVERS (PolicySchema).
 * `serve` and `doctor` both call this, so doctor says ok exactly when serve would take the
 * configuration. Throws ConfigInvalid naming what is wrong.
 */
export interface Settings {
  config: Config;
  policy: Policy;
}

export function loadSettings(env: Record<string, string | undefined>): Settings {
  const config = loadConfig(env);
  const policy = loadPolicy(config.NIGHTSHIFT_POLICY, config.NIGHTSHIFT_APPROVERS);
  return { config, policy };
}

/** How many people and groups may approve: with none, proposals can only be rejected or expire. */
export function approverCount(policy: Policy): number {
  return policy.approvers.users.length + policy.approvers.usergroups.length;
}
