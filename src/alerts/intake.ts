import type { Db } from '../store/db.ts';
import { appendAudit, queueThreadMessage, type ThreadMessageBody } from '../store/records.ts';
import { dedupKey, groupKey, type NormalizedAlert } from './alert.ts';
import { type AlertSource, parseDelivery, printable, type RejectedAlert, summarize } from './parse.ts';

/**
 * Alert intake: every delivery is stored as received before the webhook answers, valid or not:
 * its body, as bytes, in alert_deliveries, on its own and before it is parsed, so no content can
 * keep it off the record. Then each usable alert is stored in the same transaction as its incident
 * and Slack messages, under a savepoint of its own: a value PostgreSQL refuses (the parser checks
 * what it knows of, this is the backstop) rejects that alert, not the others of the delivery.
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
  | {
      status: 'accepted';
      /** The alert_deliveries row. */
      delivery: number;
      alerts: number;
      duplicates: number;
      incidents: IncidentTouch[];
      /** Alerts of the delivery that could not be used, with why (the others were stored). */
      rejected: RejectedAlert[];
      /** When some were rejected: the alerts row (valid = false) that records why. */
      recorded?: number;
    }
  | {
      status: 'invalid';
      delivery: number;
      /** The alerts row (valid = false) that records the reason. */
      alertId: number;
      error: string;
      rejected: RejectedAlert[];
    };

export interface IntakeOptions {
  channel: string;
}

/** Rejected alerts kept in the delivery's row and given in the answer; the count says how many in all. */
const REJECTED_KEPT = 100;

/**
 * True for an error of PostgreSQL about the data (class 22, data exception: a NUL, an encoding,
 * a value too long; class 54, program limit exceeded: an index row too big, a nesting too deep),
 * as opposed to a failure of the store itself (connection, disk, shutdown).
 */
export function refusedByStore(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|54)[0-9A-Z]{3}$/.test(code);
}

export async function recordDelivery(
  db: Db,
  source: AlertSource,
  body: string | Uint8Array,
  options: IntakeOptions,
): Promise<IntakeResult> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const { rows } = await db.executeSql<{ id: string }>(
    'INSERT INTO alert_deliveries (source, body) VALUES ($1, $2) RETURNING id',
    [source, bytes],
  );
  const delivery = Number(rows[0]!.id);
  const parsed = parseDelivery(source, bytes);
  if (!parsed.ok) return recordInvalid(db, source, delivery, parsed.error, parsed.rejected);
  try {
    return await db.transaction(async (tx) => {
      let stored = 0;
      let duplicates = 0;
      const rejected = [...parsed.rejected];
      const touched = new Map<number, IncidentTouch>();
      for (const item of parsed.items) {
        await tx.executeSql('SAVEPOINT alert');
        try {
          const outcome = await storeAlert(tx, source, delivery, item.alert, item.payload, options);
          await tx.executeSql('RELEASE SAVEPOINT alert');
          if (outcome === 'duplicate') duplicates++;
          else {
            stored++;
            if (outcome && !touched.has(outcome.incidentId)) touched.set(outcome.incidentId, outcome);
          }
        } catch (error) {
          if (!refusedByStore(error)) throw error;
          await tx.executeSql('ROLLBACK TO SAVEPOINT alert');
          rejected.push({ index: item.index, error: refusal(error) });
        }
      }
      rejected.sort((a, b) => a.index - b.index);
      if (stored === 0 && duplicates === 0)
        return recordInvalid(tx, source, delivery, summarize(rejected), rejected);
      await tx.executeSql(
        `UPDATE alert_deliveries SET outcome = 'accepted', accepted = $2, duplicates = $3, rejected = $4,
           rejected_count = $5 WHERE id = $1`,
        [delivery, stored, duplicates, JSON.stringify(rejected.slice(0, REJECTED_KEPT)), rejected.length],
      );
      const recorded =
        rejected.length > 0 ? await invalidRow(tx, source, delivery, summarize(rejected)) : undefined;
      return {
        status: 'accepted' as const,
        delivery,
        alerts: stored,
        duplicates,
        incidents: [...touched.values()],
        rejected,
        ...(recorded === undefined ? {} : { recorded }),
      };
    });
  } catch (error) {
    if (!refusedByStore(error)) throw error;
    // Refused outside an alert's savepoint: the delivery is on record, with why.
    return recordInvalid(db, source, delivery, refusal(error), parsed.rejected);
  }
}

function refusal(error: unknown): string {
  return `the store refused it: ${printable(String((error as Error).message), 300)}`;
}

/** A delivery with nothing usable: an invalid alerts row with the reason, and the delivery marked. */
async function recordInvalid(
  db: Db,
  source: AlertSource,
  delivery: number,
  error: string,
  rejected: RejectedAlert[],
): Promise<IntakeResult> {
  return db.transaction(async (tx) => {
    const alertId = await invalidRow(tx, source, delivery, error);
    await tx.executeSql(
      `UPDATE alert_deliveries SET outcome = 'invalid', error = $2, rejected = $3, rejected_count = $4
       WHERE id = $1`,
      [delivery, error, JSON.stringify(rejected.slice(0, REJECTED_KEPT)), rejected.length],
    );
    return { status: 'invalid' as const, delivery, alertId, error, rejected };
  });
}

/**
 * The alerts row that records what of a delivery could not be used, and why: as before alert
 * deliveries had a table of their own, so a look at the alerts shows what was refused.
 */
async function invalidRow(db: Db, source: AlertSource, delivery: number, error: string): Promise<number> {
  const { rows } = await db.executeSql<{ id: string }>(
    'INSERT INTO alerts (source, delivery_id, valid, error) VALUES ($1, $2, false, $3) RETURNING id',
    [source, delivery, error],
  );
  return Number(rows[0]!.id);
}

/** One alert, its incident and its messages; 'duplicate' when this alert state is already stored. */
async function storeAlert(
  tx: Db,
  source: AlertSource,
  delivery: number,
  alert: NormalizedAlert,
  payload: unknown,
  options: IntakeOptions,
): Promise<IncidentTouch | undefined | 'duplicate'> {
  const key = dedupKey(alert);
  const inserted = await tx.executeSql<{ id: string }>(
    `INSERT INTO alerts (source, delivery_id, payload, valid, dedup_key, fingerprint, status, host, problem)
     VALUES ($1, $2, $3, true, $4, $5, $6, $7, $8)
     ON CONFLICT (dedup_key) DO NOTHING RETURNING id`,
    [
      source,
      delivery,
      JSON.stringify(payload),
      key,
      alert.fingerprint,
      alert.status,
      alert.host,
      alert.problem,
    ],
  );
  const alertId = inserted.rows[0]?.id;
  if (alertId === undefined) return 'duplicate';
  const touch = await incidentFor(tx, alert);
  if (!touch) return undefined;
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
  return touch;
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
