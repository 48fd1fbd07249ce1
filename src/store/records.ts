import type { Db } from './db.ts';

/**
 * The two writes nearly every part of the bot makes, in one place: an entry in the append-only
 * audit log, and a message queued for an incident's Slack thread (the outbox the Slack side
 * drains). A message is queued once per dedup key, so a retried delivery, command or job never
 * posts twice.
 */

export async function appendAudit(
  db: Db,
  entry: { actor: string; action: string; incidentId: number | null; subject?: object },
): Promise<void> {
  await db.executeSql('INSERT INTO audit_log (actor, action, incident_id, subject) VALUES ($1, $2, $3, $4)', [
    entry.actor,
    entry.action,
    entry.incidentId,
    JSON.stringify(entry.subject ?? {}),
  ]);
}

export type ThreadMessageBody =
  | { type: 'incident.root' }
  | { type: 'alert'; alertId: number; status: 'firing' | 'resolved'; name: string; summary: string }
  | { type: 'text'; text: string; blocks: unknown[] }
  | { type: 'file'; content: string; filename: string; title: string; comment: string };

/**
 * Queues a message for the incident's thread (role 'reply') or its root. The channel is the
 * incident's own once its root is posted, else `fallbackChannel`.
 */
export async function queueThreadMessage(
  db: Db,
  message: {
    incidentId: number;
    key: string;
    role?: 'root' | 'reply';
    fallbackChannel: string;
    body: ThreadMessageBody;
  },
): Promise<void> {
  await db.executeSql(
    `INSERT INTO thread_messages (incident_id, dedup_key, role, channel, body)
     SELECT id, $2, $3, coalesce(channel, $4), $5 FROM incidents WHERE id = $1
     ON CONFLICT (dedup_key) DO NOTHING`,
    [
      message.incidentId,
      message.key,
      message.role ?? 'reply',
      message.fallbackChannel,
      JSON.stringify(message.body),
    ],
  );
}

/**
 * The disk before → after of the incident's latest run that freed it, as lines such as
 * `/: 97% → 41% used, 1.2 GiB → 30.1 GiB free`: for the root message.
 */
export async function latestDiskChange(
  db: Db,
  incidentId: number,
): Promise<{ host: string; lines: string[]; freedBytes: number } | undefined> {
  const { rows } = await db.executeSql<{ target: string; result: { disk?: string[]; freedBytes?: number } }>(
    `SELECT p.target, r.result FROM runs r JOIN proposals p ON p.id = r.proposal_id
     WHERE p.incident_id = $1 AND p.kind = 'free' AND r.finished_at IS NOT NULL
     ORDER BY r.id DESC LIMIT 1`,
    [incidentId],
  );
  const row = rows[0];
  if (!row) return undefined;
  return { host: row.target, lines: row.result.disk ?? [], freedBytes: row.result.freedBytes ?? 0 };
}
