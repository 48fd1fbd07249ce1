import { rm } from 'node:fs/promises';
import { expireProposals } from '../approvals/service.ts';
import type { Logger } from '../log.ts';
import type { SlackPoster } from '../slack/outbox.ts';
import { refreshProposalMessage } from '../slack/proposal-messages.ts';
import type { Db } from '../store/db.ts';
import { appendAudit } from '../store/records.ts';

/**
 * Housekeeping on a timer, safe to run in every bot process at once (rows are claimed with SKIP
 * LOCKED or guarded by their state): proposals past their time are marked expired and their
 * messages say so; evidence past its retention period is deleted from the bot host, its record
 * (size, sha256, origin) kept.
 */
export async function sweep(
  deps: { db: Db; log: Logger; slack?: SlackPoster | undefined; evidenceDays: number },
  now: Date,
): Promise<{ expired: number; deleted: number }> {
  const expired = await expireProposals(deps.db, now);
  for (const p of expired) await refreshProposalMessage(deps.db, deps.slack, p.id, now);
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
  return { expired: expired.length, deleted: rows.length };
}

export function startSweeper(
  deps: { db: Db; log: Logger; slack?: SlackPoster | undefined; evidenceDays: number },
  everyMs = 30_000,
): { stop(): void } {
  const timer = setInterval(() => {
    sweep(deps, new Date()).catch((error: unknown) => deps.log.warn({ err: error }, 'sweep failed'));
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
