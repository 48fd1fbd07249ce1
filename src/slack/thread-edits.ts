import type { Db } from '../store/db.ts';
import type { SlackMessage } from './blocks/incident.ts';
import type { SlackPoster } from './outbox.ts';

/**
 * Edits a queued thread message in place (a proposal's state, a transfer's progress): the queued
 * body is rewritten, so a message Slack does not have yet is posted in its latest form, and one
 * Slack has is updated with chat.update. Returns false when no message has that key.
 */
export async function editThreadMessage(
  db: Db,
  slack: SlackPoster | undefined,
  key: string,
  message: SlackMessage,
): Promise<boolean> {
  const { rows } = await db.executeSql<{ channel: string; ts: string | null }>(
    'UPDATE thread_messages SET body = $2 WHERE dedup_key = $1 RETURNING channel, ts',
    [key, JSON.stringify({ type: 'text', text: message.text, blocks: message.blocks })],
  );
  const row = rows[0];
  if (!row) return false;
  if (slack && row.ts)
    await slack.update({ channel: row.channel, ts: row.ts, text: message.text, blocks: message.blocks });
  return true;
}
