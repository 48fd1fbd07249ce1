import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { SlackMessage } from './blocks/incident.ts';
import type { SlackPoster } from './outbox.ts';

/**
 * Edits a queued thread message in place (a proposal's state, a transfer's progress): the queued
 * body is rewritten, so a message Slack does not have yet is posted in its latest form, and one
 * Slack has is updated with chat.update. Slack failing to take the update (a rate limit, a
 * deleted message) is logged and not thrown: what the message shows must never stop what it
 * shows (a run, an approval); the next edit brings it up to date. Returns false when no message
 * has that key.
 */
export async function editThreadMessage(
  db: Db,
  slack: SlackPoster | undefined,
  key: string,
  message: SlackMessage,
  log?: Pick<Logger, 'warn'>,
): Promise<boolean> {
  const { rows } = await db.executeSql<{ channel: string; ts: string | null }>(
    'UPDATE thread_messages SET body = $2 WHERE dedup_key = $1 RETURNING channel, ts',
    [key, JSON.stringify({ type: 'text', text: message.text, blocks: message.blocks })],
  );
  const row = rows[0];
  if (!row) return false;
  if (slack && row.ts) {
    try {
      await slack.update({ channel: row.channel, ts: row.ts, text: message.text, blocks: message.blocks });
    } catch (error) {
      log?.warn({ err: error, key }, 'could not edit a thread message in Slack; the next edit will');
    }
  }
  return true;
}
