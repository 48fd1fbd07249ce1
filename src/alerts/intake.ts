import type { Db } from '../store/db.ts';
import { appendAudit, queueThreadMessage, type ThreadMessageBody } from '../store/records.ts';
import { dedupKey, groupKey, type NormalizedAlert } from './alert.ts';
import { type AlertSource, parseDelivery } from './parse.ts';

/**
 * Alert intake: every delivery is stored as received before the webhook answers, valid or not.
 * A firing disk alert for a host opens an incident, or joins the open one for that host and
 * problem; the partial unique index on incidents makes that hold under concurrent deliveries.
 * Slack messages are not posted here: an outbox row per message (thread_messages, unique by a
 * dedup key) is written in the same transaction, so a retried delivery never posts twice.
 */

export interface IncidentTouch {
  incidentId: number;
  opened: boolean;
  previousIncidentId: number | null;
  /** As the alert named them: what collection starts from. */
  host: string;
  problem: string;
}

export type IntakeResult =
  | { status: 'accepted'; alerts: number; duplicates: number; incidents: IncidentTouch[] }
  | { status: 'invalid'; alertId: number; error: string };

export interface IntakeOptions {
  channel: string;
}

export async function recordDelivery(
  db: Db,
  source: AlertSource,
  body: string,
  options: IntakeOptions,
): Promise<IntakeResult> {
  const parsed = parseDelivery(source, body);
  if (!parsed.ok) {
    const { rows } = await db.executeSql<{ id: string }>(
      'INSERT INTO alerts (source, body, payload, valid, error) VALUES ($1, $2, $3, false, $4) RETURNING id',
      [source, body, parsed.payload === null ? null : JSON.stringify(parsed.payload), parsed.error],
    );
    return { status: 'invalid', alertId: Number(rows[0]!.id), error: parsed.error };
  }
  return db.transaction(async (tx) => {
    let stored = 0;
    let duplicates = 0;
    const touched = new Map<number, IncidentTouch>();
    for (const alert of parsed.alerts) {
      const key = dedupKey(alert);
      const inserted = await tx.executeSql<{ id: string }>(
        `INSERT INTO alerts (source, body, payload, valid, dedup_key, fingerprint, status, host, problem)
         VALUES ($1, $2, $3, true, $4, $5, $6, $7, $8)
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id`,
        [
          source,
          body,
          JSON.stringify(parsed.payload),
          key,
          alert.fingerprint,
          alert.status,
          alert.host,
          alert.problem,
        ],
      );
      const alertId = inserted.rows[0]?.id;
      if (alertId === undefined) {
        duplicates++;
        continue;
      }
      stored++;
      const touch = await incidentFor(tx, alert);
      if (!touch) continue;
      await tx.executeSql('UPDATE alerts SET incident_id = $1 WHERE id = $2', [touch.incidentId, alertId]);
      if (touch.opened) {
        await outbox(tx, touch.incidentId, `incident:${touch.incidentId}:root`, 'root', options.channel, {
          type: 'incident.root',
        });
        await audit(tx, 'nightshift', 'incident.opened', touch.incidentId, {
          alertId: Number(alertId),
          previousIncidentId: touch.previousIncidentId,
        });
      }
      await outbox(tx, touch.incidentId, `alert:${key}`, 'reply', options.channel, {
        type: 'alert',
        alertId: Number(alertId),
        status: alert.status,
        name: alert.name,
        summary: alert.summary,
      });
      if (!touched.has(touch.incidentId)) touched.set(touch.incidentId, touch);
    }
    return { status: 'accepted' as const, alerts: stored, duplicates, incidents: [...touched.values()] };
  });
}

/** The incident an alert belongs to: the open one for its host and problem, or a new one if firing. */
async function incidentFor(tx: Db, alert: NormalizedAlert): Promise<IncidentTouch | undefined> {
  const group = groupKey(alert);
  if (!group) return undefined;
  const open = await tx.executeSql<{ id: string }>(
    `SELECT id FROM incidents WHERE group_key = $1 AND status <> 'resolved'`,
    [group],
  );
  const where = { host: alert.host!, problem: alert.problem };
  if (open.rows[0])
    return { incidentId: Number(open.rows[0].id), opened: false, previousIncidentId: null, ...where };
  // Only a firing alert opens an incident; a resolution with nothing open is kept, unattached.
  if (alert.status !== 'firing') return undefined;
  const previous = await tx.executeSql<{ id: string }>(
    `SELECT id FROM incidents WHERE group_key = $1 AND status = 'resolved' ORDER BY resolved_at DESC LIMIT 1`,
    [group],
  );
  const previousIncidentId = previous.rows[0] ? Number(previous.rows[0].id) : null;
  const title =
    alert.problem === 'disk'
      ? `Disk ${alert.mount ?? ''} filling on ${alert.host}`.replace('  ', ' ')
      : `${alert.name} on ${alert.host}`;
  const created = await tx.executeSql<{ id: string }>(
    `INSERT INTO incidents (group_key, host, problem, title, severity, opened_by, previous_incident_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (group_key) WHERE status <> 'resolved' DO NOTHING RETURNING id`,
    [group, alert.host, alert.problem, title, alert.severity, `alert:${alert.source}`, previousIncidentId],
  );
  if (created.rows[0])
    return { incidentId: Number(created.rows[0].id), opened: true, previousIncidentId, ...where };
  // Another delivery opened it between our SELECT and INSERT: join that one.
  const winner = await tx.executeSql<{ id: string }>(
    `SELECT id FROM incidents WHERE group_key = $1 AND status <> 'resolved'`,
    [group],
  );
  return { incidentId: Number(winner.rows[0]!.id), opened: false, previousIncidentId: null, ...where };
}

function outbox(
  tx: Db,
  incidentId: number,
  key: string,
  role: 'root' | 'reply',
  channel: string,
  body: ThreadMessageBody,
) {
  return queueThreadMessage(tx, { incidentId, key, role, fallbackChannel: channel, body });
}

function audit(tx: Db, actor: string, action: string, incidentId: number, subject: object): Promise<void> {
  return appendAudit(tx, { actor, action, incidentId, subject });
}
