import type { Db } from './db.ts';

/**
 * channel_messages: the bot's messages in the channel itself, one per key (the fleet's), edited in
 * place. The row is claimed while Slack is called, as the outbox claims a message, so two
 * processes neither post it twice nor edit it at once.
 */

export interface ChannelMessage {
  channel: string;
  ts: string | null;
  /** The hash of what Slack shows, null before the first post went through. */
  hash: string | null;
}

export async function getChannelMessage(db: Db, key: string): Promise<ChannelMessage | undefined> {
  const { rows } = await db.executeSql<ChannelMessage>(
    'SELECT channel, ts, hash FROM channel_messages WHERE key = $1',
    [key],
  );
  return rows[0];
}

/** Creates the row, to be posted in `channel`; a row already there is kept as it is. */
export async function createChannelMessage(db: Db, key: string, channel: string): Promise<void> {
  await db.executeSql(
    'INSERT INTO channel_messages (key, channel) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
    [key, channel],
  );
}

/** Claims the row for `token` unless a claim younger than `claimTimeoutMs` holds it. */
export async function claimChannelMessage(
  db: Db,
  key: string,
  token: string,
  claimTimeoutMs: number,
): Promise<Pick<ChannelMessage, 'channel' | 'ts'> | undefined> {
  const { rows } = await db.executeSql<Pick<ChannelMessage, 'channel' | 'ts'>>(
    `UPDATE channel_messages SET claimed_by = $2, claimed_at = now()
     WHERE key = $1 AND (claimed_by IS NULL OR claimed_at < now() - $3::float8 * interval '1 millisecond')
     RETURNING channel, ts`,
    [key, token, claimTimeoutMs],
  );
  return rows[0];
}

/** Records what Slack now shows (its ts and the rendering's hash) and releases the claim. */
export async function recordChannelMessageSent(
  db: Db,
  key: string,
  token: string,
  sent: { ts: string | null; hash: string },
): Promise<void> {
  await db.executeSql(
    `UPDATE channel_messages SET ts = $3, hash = $4, claimed_by = NULL, claimed_at = NULL, last_error = NULL,
       updated_at = now() WHERE key = $1 AND claimed_by = $2`,
    [key, token, sent.ts, sent.hash],
  );
}

/** Releases the claim after a failed call, with why. */
export async function recordChannelMessageFailed(db: Db, key: string, token: string, error: string) {
  await db.executeSql(
    'UPDATE channel_messages SET claimed_by = NULL, claimed_at = NULL, last_error = $3 WHERE key = $1 AND claimed_by = $2',
    [key, token, error],
  );
}
