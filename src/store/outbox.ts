import { randomUUID } from 'node:crypto';
import type { Db } from './db.ts';
import type { ThreadMessageBody } from './records.ts';

/**
 * The outbox's side of thread_messages: claiming a message to post (SKIP LOCKED, the claim naming
 * its holder), renewing and releasing claims, recording what Slack took, and the same for edits
 * of a posted message (edit_claimed_by). What the claims mean, and why they are renewed, is told
 * in slack/outbox.ts; here is only how they are stored.
 */

/** A file's body once its upload is under way: the id Slack gave the upload, kept for the share. */
export type FileBody = Extract<ThreadMessageBody, { type: 'file' }> & { uploadedFileId?: string };

/** A body as stored: what was queued, a file's with its upload's id. */
export type OutboxBody = Exclude<ThreadMessageBody, { type: 'file' }> | FileBody;

/** A message claimed for posting. */
export interface ClaimedMessage {
  id: number;
  incidentId: number;
  dedupKey: string;
  role: 'root' | 'reply';
  channel: string;
  body: OutboxBody;
  /** Attempts before this one. */
  attempts: number;
  /** Names this claim: only its holder renews it. */
  claimedBy: string;
}

/** `now() - <ms> milliseconds`, the moment before which a claim has expired ($n holds the ms). */
const expiredBefore = (param: number) => `now() - $${param}::float8 * interval '1 millisecond'`;

/**
 * The next message that can be posted now: not posted, not dead, not waiting out a retry delay,
 * not held by a live claim; a reply only once its root is posted and no earlier reply of its
 * incident is still to be posted (a claimed one in flight, or one waiting for its retry).
 */
const NEXT_POSTABLE = `SELECT m.id, m.incident_id, m.dedup_key, m.role, m.channel, m.body, m.attempts
  FROM thread_messages m JOIN incidents i ON i.id = m.incident_id
  WHERE m.posted_at IS NULL AND m.dead_at IS NULL
    AND (m.not_before IS NULL OR m.not_before <= now())
    AND (m.claimed_at IS NULL OR m.claimed_at < ${expiredBefore(1)})
    AND (m.role = 'root' OR (i.root_ts IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM thread_messages e
      WHERE e.incident_id = m.incident_id AND e.role = 'reply' AND e.id < m.id
        AND e.posted_at IS NULL AND e.dead_at IS NULL)))
  ORDER BY m.id LIMIT 1 FOR UPDATE OF m SKIP LOCKED`;

/** Claims the next postable message (NEXT_POSTABLE) for `claimTimeoutMs` after its last renewal. */
export async function claimNextMessage(db: Db, claimTimeoutMs: number): Promise<ClaimedMessage | undefined> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.executeSql<{
      id: string;
      incident_id: string;
      dedup_key: string;
      role: 'root' | 'reply';
      channel: string;
      body: OutboxBody;
      attempts: number;
    }>(NEXT_POSTABLE, [claimTimeoutMs]);
    const row = rows[0];
    if (!row) return undefined;
    const token = randomUUID();
    // The body read here is what Slack gets (edited_version): an edit made while it is being
    // posted is sent after the post, by the drain's pass over edits (sendPendingEdits).
    await tx.executeSql(
      `UPDATE thread_messages SET claimed_at = now(), claimed_by = $2, attempts = attempts + 1,
         edited_version = version WHERE id = $1`,
      [row.id, token],
    );
    return {
      id: Number(row.id),
      incidentId: Number(row.incident_id),
      dedupKey: row.dedup_key,
      role: row.role,
      channel: row.channel,
      body: row.body,
      attempts: row.attempts,
      claimedBy: token,
    };
  });
}

/** Renews a claim; false when it is no longer this holder's (taken over, or posted). */
export async function renewClaim(db: Db, messageId: number, token: string): Promise<boolean> {
  const { rows } = await db.executeSql<{ id: string }>(
    `UPDATE thread_messages SET claimed_at = now()
     WHERE id = $1 AND claimed_by = $2 AND posted_at IS NULL RETURNING id`,
    [messageId, token],
  );
  return rows.length > 0;
}

/** Gives a claim back unposted (a shutdown), so another process posts it now. */
export async function releaseClaim(db: Db, messageId: number, token: string): Promise<void> {
  await db.executeSql(
    'UPDATE thread_messages SET claimed_at = NULL, claimed_by = NULL WHERE id = $1 AND claimed_by = $2 AND posted_at IS NULL',
    [messageId, token],
  );
}

/** Releases a message whose post failed, to be tried again after `delayMs`. */
export async function releaseForRetry(db: Db, messageId: number, reason: string, delayMs: number) {
  await db.executeSql(
    `UPDATE thread_messages SET claimed_at = NULL, claimed_by = NULL, last_error = $2,
       not_before = now() + $3::float8 * interval '1 millisecond' WHERE id = $1`,
    [messageId, reason, delayMs],
  );
}

/** Gives up on a message: it is dead, and the replies behind it go on. */
export async function markDead(db: Db, messageId: number, reason: string): Promise<void> {
  await db.executeSql(
    `UPDATE thread_messages SET claimed_at = NULL, claimed_by = NULL, last_error = $2, dead_at = now()
     WHERE id = $1`,
    [messageId, reason],
  );
}

/**
 * Records a posted root: its message and the incident's root (channel, ts, and the hash of what
 * was posted, null when not known) commit together.
 */
export async function recordRootPosted(
  db: Db,
  posted: {
    messageId: number;
    incidentId: number;
    channel: string;
    ts: string | undefined;
    hash: string | null;
  },
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.executeSql(
      'UPDATE thread_messages SET ts = $2, posted_at = now(), last_error = NULL WHERE id = $1',
      [posted.messageId, posted.ts],
    );
    await tx.executeSql('UPDATE incidents SET channel = $2, root_ts = $3, root_hash = $4 WHERE id = $1', [
      posted.incidentId,
      posted.channel,
      posted.ts,
      posted.hash,
    ]);
  });
}

/** Records a posted reply: its ts and the channel it went to, where its edits are sent. */
export async function recordReplyPosted(
  db: Db,
  messageId: number,
  where: { ts: string | undefined; channel: string },
): Promise<void> {
  await db.executeSql(
    'UPDATE thread_messages SET ts = $2, channel = $3, posted_at = now(), last_error = NULL WHERE id = $1',
    [messageId, where.ts, where.channel],
  );
}

/** Records a shared file as posted (a file has no ts of its own to edit). */
export async function recordFilePosted(db: Db, messageId: number): Promise<void> {
  await db.executeSql('UPDATE thread_messages SET posted_at = now(), last_error = NULL WHERE id = $1', [
    messageId,
  ]);
}

/** Keeps the id of a file's upload in its body, before its share is asked for. */
export async function recordUpload(db: Db, messageId: number, fileId: string): Promise<void> {
  await db.executeSql(
    `UPDATE thread_messages SET body = body || jsonb_build_object('uploadedFileId', $2::text) WHERE id = $1`,
    [messageId, fileId],
  );
}

/** Forgets an upload Slack no longer has, so the next attempt uploads again. */
export async function forgetUpload(db: Db, messageId: number, fileId: string): Promise<void> {
  await db.executeSql(
    `UPDATE thread_messages SET body = body - 'uploadedFileId' WHERE id = $1 AND body->>'uploadedFileId' = $2`,
    [messageId, fileId],
  );
}

/**
 * The outbox's backlog in one read: messages still to post (waiting for a retry included), those
 * given up on, how long the oldest still to post has waited (0 when none) and the first
 * last_error among them.
 */
export async function outboxBacklog(
  db: Db,
): Promise<{ pending: number; dead: number; oldestSeconds: number; lastError: string | null }> {
  const { rows } = await db.executeSql<{
    pending: number;
    dead: number;
    oldest: number | null;
    error: string | null;
  }>(
    `SELECT count(*) FILTER (WHERE dead_at IS NULL)::int AS pending,
            count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead,
            extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL))::float8 AS oldest,
            (array_agg(last_error ORDER BY id) FILTER (WHERE dead_at IS NULL AND last_error IS NOT NULL))[1] AS error
       FROM thread_messages WHERE posted_at IS NULL`,
  );
  const row = rows[0];
  return {
    pending: row?.pending ?? 0,
    dead: row?.dead ?? 0,
    oldestSeconds: Number(row?.oldest ?? 0),
    lastError: row?.error ?? null,
  };
}

/** A posted message claimed for an edit: where it is and the newest body Slack does not have. */
export interface ClaimedEdit {
  channel: string;
  ts: string;
  body: OutboxBody;
  version: number;
  /** Failed edits since the last that went through. */
  attempts: number;
}

/** An edit Slack does not have yet, not waiting out a retry, not held by a live claim ($n: the timeout). */
const EDIT_DUE = (timeoutParam: number) => `ts IS NOT NULL AND version > edited_version
  AND (edit_not_before IS NULL OR edit_not_before <= now())
  AND (edit_claimed_by IS NULL OR edit_claimed_at < ${expiredBefore(timeoutParam)})`;

/** Claims the message's due edit for `token`; undefined when there is none, or another holds it. */
export async function claimEdit(
  db: Db,
  messageId: number,
  token: string,
  claimTimeoutMs: number,
): Promise<ClaimedEdit | undefined> {
  const { rows } = await db.executeSql<{
    channel: string;
    ts: string;
    body: OutboxBody;
    version: string;
    edit_attempts: number;
  }>(
    `UPDATE thread_messages SET edit_claimed_by = $2, edit_claimed_at = now()
     WHERE id = $1 AND ${EDIT_DUE(3)}
     RETURNING channel, ts, body, version, edit_attempts`,
    [messageId, token, claimTimeoutMs],
  );
  const row = rows[0];
  return row
    ? {
        channel: row.channel,
        ts: row.ts,
        body: row.body,
        version: Number(row.version),
        attempts: row.edit_attempts,
      }
    : undefined;
}

export async function renewEditClaim(db: Db, messageId: number, token: string): Promise<void> {
  await db.executeSql(
    'UPDATE thread_messages SET edit_claimed_at = now() WHERE id = $1 AND edit_claimed_by = $2',
    [messageId, token],
  );
}

/** Records that Slack has the message's body up to `version`, and releases the edit's claim. */
export async function recordEditSent(
  db: Db,
  messageId: number,
  token: string,
  version: number,
): Promise<void> {
  await db.executeSql(
    `UPDATE thread_messages SET edited_version = greatest(edited_version, $3), edit_claimed_by = NULL,
       edit_claimed_at = NULL, edit_attempts = 0, edit_error = NULL
     WHERE id = $1 AND edit_claimed_by = $2`,
    [messageId, token, version],
  );
}

/**
 * Releases a failed edit: tried again after `delayMs`, or, when `giveUp`, only once the message is
 * written again.
 */
export async function recordEditFailed(
  db: Db,
  messageId: number,
  token: string,
  failure: { attempts: number; error: string; giveUp: boolean; delayMs: number },
): Promise<void> {
  await db.executeSql(
    `UPDATE thread_messages SET edit_claimed_by = NULL, edit_claimed_at = NULL, edit_attempts = $3,
       edit_error = $4, edit_not_before = CASE WHEN $5 THEN 'infinity'::timestamptz
         ELSE now() + $6::float8 * interval '1 millisecond' END
     WHERE id = $1 AND edit_claimed_by = $2`,
    [messageId, token, failure.attempts, failure.error, failure.giveUp, failure.delayMs],
  );
}

/** The messages with an edit due (EDIT_DUE), oldest first, at most 100. */
export async function messagesWithEditsDue(db: Db, claimTimeoutMs: number): Promise<number[]> {
  const { rows } = await db.executeSql<{ id: string }>(
    `SELECT id FROM thread_messages WHERE ${EDIT_DUE(1)} ORDER BY id LIMIT 100`,
    [claimTimeoutMs],
  );
  return rows.map((r) => Number(r.id));
}

/**
 * Rewrites the body of the message queued under `key`, unless it holds an edit ranked above
 * `rank`, and bumps its version. Undefined when no message has that key; `edited` says whether
 * Slack has the message and not yet this body.
 */
export async function rewriteMessage(
  db: Db,
  key: string,
  body: OutboxBody,
  rank: number,
): Promise<{ id: number; edited: boolean } | undefined> {
  const { rows } = await db.executeSql<{ id: string; edited: boolean }>(
    `UPDATE thread_messages m
     SET body = CASE WHEN m.rank <= $3 THEN $2::jsonb ELSE m.body END,
         version = CASE WHEN m.rank <= $3 THEN m.version + 1 ELSE m.version END,
         edit_attempts = CASE WHEN m.rank <= $3 THEN 0 ELSE m.edit_attempts END,
         edit_not_before = CASE WHEN m.rank <= $3 THEN NULL ELSE m.edit_not_before END,
         rank = greatest(m.rank, $3)
     WHERE m.dedup_key = $1 RETURNING m.id, m.version > m.edited_version AND m.ts IS NOT NULL AS edited`,
    [key, JSON.stringify(body), rank],
  );
  const row = rows[0];
  return row ? { id: Number(row.id), edited: row.edited } : undefined;
}

/**
 * The dedup key of the message posted at `ts` whose key starts with `prefix`, and the root of its
 * incident's thread: the channel is the message's or its incident's.
 */
export async function postedMessageAt(
  db: Db,
  where: { channel: string; ts: string; keyPrefix: string },
): Promise<{ dedupKey: string; rootTs: string | null } | undefined> {
  const { rows } = await db.executeSql<{ dedup_key: string; root_ts: string | null }>(
    `SELECT m.dedup_key, i.root_ts FROM thread_messages m JOIN incidents i ON i.id = m.incident_id
     WHERE m.ts = $1 AND starts_with(m.dedup_key, $3) AND (m.channel = $2 OR i.channel = $2)`,
    [where.ts, where.channel, where.keyPrefix],
  );
  const row = rows[0];
  return row ? { dedupKey: row.dedup_key, rootTs: row.root_ts } : undefined;
}
