import type { Policy } from './approvals/policy.ts';
import type { Clock } from './clock.ts';
import type { SshConnections } from './collect/ssh.ts';
import type { Config } from './config/env.ts';
import type { HostsFile } from './config/hosts.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { SlackPoster } from './slack/poster.ts';
import type { Db } from './store/db.ts';

/**
 * What the bot's parts share, built once in main.ts. A worker, listener or runner takes the part
 * it needs as `Pick<Services, 'db' | 'now'>` (two hand-written deps types for the same thing drift
 * apart); tests build just that part.
 */
export interface Services {
  config: Config;
  log: Logger;
  /** The clock; tests drive it. */
  now: Clock;
  db: Db;
  policy: Policy;
  metrics: Metrics;
  /** INCIDENT_CHANNEL: where an incident's root goes, and a thread whose incident has none yet. */
  channel: string;
  /** Where pulled evidence is kept (NIGHTSHIFT_EVIDENCE_DIR, default <data dir>/evidence). */
  evidenceDir: string;
  /** Slack's Web API as the outbox and the jobs use it; absent when Slack is off. */
  slack?: SlackPoster | undefined;
  /** Asks the Slack outbox to post what was just queued; a no-op when Slack is off. */
  kick: () => void;
  /** The hosts file and the SSH connections to its hosts; absent without NIGHTSHIFT_HOSTS. */
  hosts?: HostsFile | undefined;
  ssh?: SshConnections | undefined;
}
