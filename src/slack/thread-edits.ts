import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { SlackMessage } from './blocks/incident.ts';
import { type OutboxOptions, type SlackPoster, sendEdit } from './outbox.ts';

/**
 * Edits a queued thread message in place (a proposal's state, a transfer's progress): the queued
 * body is rewritten, so a message Slack does not have yet is posted in its latest form, and one
 * Slack has is updated with chat.update (sendEdit: one edit of a message at a time, always its
 * latest body).
 *
 * Edits never step back. Each one has a rank, what it shows in order (a proposal's state, then its
 * decisions; a transfer's count of progress lines), and one ranked below what the message already
 * holds is refused: an edit rendered from an older read (an approval's, while the run had already
 * started) does not replace a newer one, whichever process writes it last. Equal ranks replace
 * each other.
 *
 * Slack failing to take the update (a rate limit, a deleted message) is logged and not thrown:
 * what the message shows must never stop what it shows (a run, an approval); the outbox drain
 * tries again. Returns false when no message has that key.
 */
export async function editThreadMessage(
  db: Db,
  slack: SlackPoster | undefined,
  key: string,
  message: SlackMessage,
  options: {
    log?: Pick<Logger, 'warn' | 'error'> | undefined;
    /** Where this edit stands among the message's edits; default 0 (unranked: each replaces the last). */
    rank?: number;
    /** Outbox timings (claims, retries) other than the defaults (tests). */
    outbox?: Partial<OutboxOptions>;
  } = {},
): Promise<boolean> {
  const { rows } = await db.executeSql<{ id: string; edited: boolean }>(
    `UPDATE thread_messages m
     SET body = CASE WHEN m.rank <= $3 THEN $2::jsonb ELSE m.body END,
         version = CASE WHEN m.rank <= $3 THEN m.version + 1 ELSE m.version END,
         edit_attempts = CASE WHEN m.rank <= $3 THEN 0 ELSE m.edit_attempts END,
         edit_not_before = CASE WHEN m.rank <= $3 THEN NULL ELSE m.edit_not_before END,
         rank = greatest(m.rank, $3)
     WHERE m.dedup_key = $1 RETURNING m.id, m.version > m.edited_version AND m.ts IS NOT NULL AS edited`,
    [key, JSON.stringify({ type: 'text', text: message.text, blocks: message.blocks }), options.rank ?? 0],
  );
  const row = rows[0];
  if (!row) return false;
  if (slack && row.edited) {
    const log = options.log ?? { warn: () => {}, error: () => {} };
    await sendEdit(db, slack, Number(row.id), log, options.outbox);
  }
  return true;
}
