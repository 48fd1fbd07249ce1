import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { nextProgressEditRank, progressLines, writeProgressLine } from '../store/incident-progress.ts';
import { statusMessageKey } from '../store/message-keys.ts';
import { queueThreadMessage } from '../store/records.ts';
import { Mrkdwn } from './blocks/mrkdwn.ts';
import { PROGRESS_PHASES, type ProgressPhase, statusMessage } from './blocks/status.ts';
import type { SlackPoster } from './poster.ts';
import { editThreadMessage } from './thread-edits.ts';

/**
 * The incident's status message (blocks/status.ts), one per incident, posted with the first
 * phase's line and edited in place after that through the outbox (thread-edits.ts).
 *
 * A phase writes its own line (incident_progress, migration 12), refused when it ranks below the
 * line the phase holds (a progress draw that finishes after the final count); then it takes the
 * next edit rank from a sequence and renders every phase's line. The rendering with the highest
 * rank wins the message (edits never step back), and it was read after every line written before
 * its rank was taken, so the message ends with every phase's latest line, whichever process
 * writes last. Without `slack` (the jobs' workers) the edit is left for the outbox's drain, which
 * `kick` wakes.
 */

export { statusMessageKey };

export async function showProgress(
  db: Db,
  incidentId: number,
  phase: ProgressPhase,
  line: Mrkdwn,
  options: {
    /** Where this line stands among the phase's lines; default 0 (each replaces the last). */
    rank?: number;
    slack?: SlackPoster | undefined;
    log?: Pick<Logger, 'warn' | 'error'> | undefined;
    channel: string;
    kick?: (() => void) | undefined;
  },
): Promise<void> {
  await writeProgressLine(db, {
    incidentId,
    phase,
    position: PROGRESS_PHASES.indexOf(phase),
    rank: options.rank ?? 0,
    text: line.text,
  });
  const rank = await nextProgressEditRank(db);
  const rows = await progressLines<ProgressPhase>(db, incidentId);
  const message = statusMessage(
    incidentId,
    rows.map((r) => ({ phase: r.phase, line: new Mrkdwn(r.line) })),
  );
  const key = statusMessageKey(incidentId);
  await queueThreadMessage(db, {
    incidentId,
    key,
    fallbackChannel: options.channel,
    body: { type: 'text', text: message.text, blocks: message.blocks },
  });
  await editThreadMessage(db, options.slack, key, message, {
    log: options.log,
    rank,
  });
  options.kick?.();
}
