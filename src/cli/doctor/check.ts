import type { Policy } from '../../approvals/policy.ts';
import type { Config } from '../../config/env.ts';
import type { UserLookup } from '../../runners/sandbox-user.ts';

/** ok: null is off or not checked; warning marks an ok: null that needs attention (exit status stays 0). */
export type CheckResult = { part: string; ok: boolean | null; detail: string; warning?: true };

export interface CheckOptions {
  /** The bot's uid, for the sandbox user check. Default this process's. */
  botUid?: number;
  /** How users are looked up. Default `id`. */
  lookup?: UserLookup;
  /** Where bwrap and prlimit are looked for. Default PATH. */
  searchPath?: string;
  /** Where the cgroup file systems are mounted. Default /sys/fs/cgroup. */
  cgroupRoot?: string;
}

/** What every check reads: the settings as serve loads them, and the test's overrides. */
export interface CheckContext {
  config: Config;
  policy: Policy;
  options: CheckOptions;
}

/** One part of the bot checked: one result, or several (a host each, a database each). */
export type Check = (context: CheckContext) => Promise<CheckResult | CheckResult[]>;
