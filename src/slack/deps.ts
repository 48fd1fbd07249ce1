import type { Services } from '../services.ts';
import type { SlackPoster } from './poster.ts';
import type { ApprovalListenerDeps } from './proposal-decisions.ts';

/** What every listener gets: injected, never imported; the shared parts picked from Services. */
export interface ListenerDeps extends Pick<Services, 'db' | 'log' | 'channel' | 'kick' | 'now'> {
  /** Re-renders an incident's root message in place. */
  refresh: (incidentId: number) => Promise<void>;
  /**
   * Queues the built-in collection on a host for an incident, as a disk alert does (idempotent:
   * one job per incident). Absent when the bot has no hosts file.
   */
  startCollection?: (incidentId: number, host: string) => Promise<void>;
  /** The approval gate: who may approve, the message to refresh, the run to start. */
  approvals: ApprovalListenerDeps;
}

export type { SlackPoster };
