import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { SlackPoster } from './poster.ts';
import type { ApprovalListenerDeps } from './proposal-decisions.ts';

/** What every listener gets: injected, never imported. */
export interface ListenerDeps {
  db: Db;
  log: Logger;
  channel: string;
  /** Asks the outbox to post what was just queued. */
  kick: () => void;
  /** Re-renders an incident's root message in place. */
  refresh: (incidentId: number) => Promise<void>;
  now: () => Date;
  /**
   * Queues the built-in collection on a host for an incident, as a disk alert does (idempotent:
   * one job per incident). Absent when the bot has no hosts file.
   */
  startCollection?: (incidentId: number, host: string) => Promise<void>;
  /** The approval gate: who may approve, the message to refresh, the run to start. */
  approvals: ApprovalListenerDeps;
}

export type { SlackPoster };
