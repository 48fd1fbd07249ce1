import { rm } from 'node:fs/promises';
import { closedUntold } from '../agent/conversation.ts';
import { expireProposals, type Proposal } from '../approvals/service.ts';
import { forgetSecretsBefore } from '../evidence/known-secrets.ts';
import type { Logger } from '../log.ts';
import type { SlackPoster } from '../slack/outbox.ts';
import { refreshProposalMessage } from '../slack/proposal-messages.ts';
import type { Db } from '../store/db.ts';
import { appendAudit } from '../store/records.ts';

/**
 * Housekeeping on a timer, safe to run in every bot process at once (rows are claimed with SKIP
 * LOCKED or guarded by their state): proposals past their time are marked expired, their
 * messages say so and the agent that made one is woken; evidence past its retention period is
 * deleted from the bot host, its record (size, sha256, origin) kept, and so are the secrets
 * remembered beside it; a disk incident whose collection was lost is collected.
 */
export interface SweeperDeps {
  db: Db;
  log: Logger;
  slack?: SlackPoster | undefined;
  evidenceDays: number;
  /** Where evidence is kept: the secrets remembered beside it go with it (evidence/known-secrets.ts). */
  evidenceDir?: string | undefined;
  /** Queues the collection of a disk incident (idempotent: one job id per incident). */
  startCollection?: ((incidentId: number, host: string) => Promise<void>) | undefined;
  /**
   * Tells whoever waits on a proposal that it closed without running (the agent, when it made
   * it: agentAfterClose). Idempotent: one job id per proposal.
   */
  onClosed?: ((proposal: Pick<Proposal, 'id' | 'incidentId' | 'proposedBy'>) => Promise<void>) | undefined;
  /** Whether the agent is on (ANTHROPIC_API_KEY): then wakes it never got are sent again. */
  agentOn?: boolean | undefined;
}

export async function sweep(
  deps: SweeperDeps,
  now: Date,
): Promise<{ expired: number; deleted: number; collections: number; wakes: number }> {
  const expired = await expireProposals(deps.db, now);
  for (const p of expired) {
    // The message first: the expiry is committed, and a failed wake must not leave live buttons.
    await refreshProposalMessage(deps.db, deps.slack, p.id, now, undefined, deps.log);
    await deps
      .onClosed?.(p)
      .catch((error: unknown) =>
        deps.log.warn(
          { err: error, proposal: p.id },
          'could not wake the agent; the next sweep sends it again',
        ),
      );
  }
  // A closure of the agent's proposal it was never told of, though it can still take a turn: the
  // wake was lost (the bot died between a rejection's commit and the send, or while the runner
  // expired an approval). Sent again; the job id is the proposal's, so this never makes a second
  // turn, and the turn that tells the model marks the proposal.
  let wakes = 0;
  if (deps.onClosed && deps.agentOn) {
    const justExpired = new Set(expired.map((p) => p.id));
    for (const p of await closedUntold(deps.db, { limit: 50 })) {
      if (justExpired.has(p.id)) continue;
      await deps.onClosed({ ...p, proposedBy: 'agent' });
      wakes++;
    }
  }
  const cutoff = new Date(now.getTime() - deps.evidenceDays * 86_400_000);
  const { rows } = await deps.db.executeSql<{ id: string; incident_id: string; local_path: string }>(
    `UPDATE evidence_artifacts SET deleted_at = $2
     WHERE state = 'complete' AND deleted_at IS NULL AND local_path IS NOT NULL AND completed_at < $1
     RETURNING id, incident_id, local_path`,
    [cutoff, now],
  );
  for (const row of rows) {
    await rm(row.local_path, { force: true });
    await appendAudit(deps.db, {
      actor: 'nightshift',
      action: 'evidence.deleted',
      incidentId: Number(row.incident_id),
      subject: { artifact: Number(row.id), path: row.local_path, retentionDays: deps.evidenceDays },
    });
  }
  // The secrets found in an incident's findings are kept as long as any of its evidence is.
  if (deps.evidenceDir) {
    const live = await deps.db.executeSql<{ incident_id: string }>(
      'SELECT DISTINCT incident_id FROM evidence_artifacts WHERE deleted_at IS NULL',
    );
    await forgetSecretsBefore(deps.evidenceDir, cutoff, new Set(live.rows.map((r) => Number(r.incident_id))));
  }
  // A disk incident whose collection was never queued (the bot died between the alert's commit
  // and the send): queue it now. The job id is the incident's, so this never makes a second one.
  let collections = 0;
  if (deps.startCollection) {
    const missed = await deps.db.executeSql<{ id: string; host: string }>(
      `SELECT i.id, i.host FROM incidents i
       WHERE i.problem = 'disk' AND i.status <> 'resolved' AND i.opened_at < $1
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.incident_id = i.id AND j.kind = 'collect-host')
       ORDER BY i.id LIMIT 50`,
      [new Date(now.getTime() - 60_000)],
    );
    for (const row of missed.rows) {
      await deps.startCollection(Number(row.id), row.host);
      collections++;
    }
  }
  return { expired: expired.length, deleted: rows.length, collections, wakes };
}

export function startSweeper(deps: SweeperDeps, everyMs = 30_000): { stop(): void } {
  const timer = setInterval(() => {
    sweep(deps, new Date()).catch((error: unknown) => deps.log.warn({ err: error }, 'sweep failed'));
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
