import {
  attachAlert,
  insertDelivery,
  insertInvalidAlert,
  insertValidAlert,
  markDeliveryAccepted,
  markDeliveryInvalid,
} from '../store/alerts.ts';
import type { Db } from '../store/db.ts';
import { insertIncident, lastResolvedOfGroup, openIncidentOfGroup } from '../store/incidents.ts';
import { alertMessageKey, rootMessageKey } from '../store/message-keys.ts';
import { appendAudit, queueThreadMessage, type ThreadMessageBody } from '../store/records.ts';
import { underSavepoint } from '../store/savepoint.ts';
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
  const delivery = await insertDelivery(db, source, bytes);
  const parsed = parseDelivery(source, bytes);
  if (!parsed.ok) return recordInvalid(db, source, delivery, parsed.error, parsed.rejected);
  try {
    return await db.transaction(async (tx) => {
      let stored = 0;
      let duplicates = 0;
      const rejected = [...parsed.rejected];
      const touched = new Map<number, IncidentTouch>();
      for (const item of parsed.items) {
        try {
          const outcome = await underSavepoint(
            tx,
            () => storeAlert(tx, source, delivery, item.alert, item.payload, options),
            refusedByStore,
          );
          if (outcome === 'duplicate') duplicates++;
          else {
            stored++;
            if (outcome && !touched.has(outcome.incidentId)) touched.set(outcome.incidentId, outcome);
          }
        } catch (error) {
          if (!refusedByStore(error)) throw error;
          rejected.push({ index: item.index, error: refusal(error) });
        }
      }
      rejected.sort((a, b) => a.index - b.index);
      if (stored === 0 && duplicates === 0)
        return recordInvalid(tx, source, delivery, summarize(rejected), rejected);
      await markDeliveryAccepted(tx, delivery, { accepted: stored, duplicates, rejected });
      const recorded =
        rejected.length > 0 ? await insertInvalidAlert(tx, source, delivery, summarize(rejected)) : undefined;
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
    const alertId = await insertInvalidAlert(tx, source, delivery, error);
    await markDeliveryInvalid(tx, delivery, error, rejected);
    return { status: 'invalid' as const, delivery, alertId, error, rejected };
  });
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
  const alertId = await insertValidAlert(tx, {
    source,
    delivery,
    payload,
    dedupKey: key,
    fingerprint: alert.fingerprint,
    status: alert.status,
    host: alert.host,
    problem: alert.problem,
  });
  if (alertId === undefined) return 'duplicate';
  const touch = await incidentFor(tx, alert);
  if (!touch) return undefined;
  await attachAlert(tx, alertId, touch.incidentId);
  if (touch.opened) {
    await outbox(tx, touch.incidentId, rootMessageKey(touch.incidentId), 'root', options.channel, {
      type: 'incident.root',
    });
    await audit(tx, 'nightshift', 'incident.opened', touch.incidentId, {
      alertId,
      previousIncidentId: touch.previousIncidentId,
    });
  }
  await outbox(tx, touch.incidentId, alertMessageKey(key), 'reply', options.channel, {
    type: 'alert',
    alertId,
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
  const open = await openIncidentOfGroup(tx, group);
  const where = { host: alert.host!, problem: alert.problem };
  if (open) return { incidentId: open.id, opened: false, previousIncidentId: null, ...where };
  // Only a firing alert opens an incident; a resolution with nothing open is kept, unattached.
  if (alert.status !== 'firing') return undefined;
  const previousIncidentId = await lastResolvedOfGroup(tx, group);
  const title =
    alert.problem === 'disk'
      ? `Disk ${alert.mount ?? ''} filling on ${alert.host}`.replace('  ', ' ')
      : `${alert.name} on ${alert.host}`;
  const created = await insertIncident(tx, {
    groupKey: group,
    host: where.host,
    problem: alert.problem,
    title,
    severity: alert.severity,
    openedBy: `alert:${alert.source}`,
    previousIncidentId,
  });
  if (created) return { incidentId: created.id, opened: true, previousIncidentId, ...where };
  // Another delivery opened it between our SELECT and INSERT: join that one.
  const winner = (await openIncidentOfGroup(tx, group))!;
  return { incidentId: winner.id, opened: false, previousIncidentId: null, ...where };
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
