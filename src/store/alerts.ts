import type { AlertSource, RejectedAlert } from '../alerts/parse.ts';
import type { Db } from './db.ts';

/**
 * The alert_deliveries and alerts tables: every delivery as received, then each alert of it
 * (valid, unique by its dedup key; or invalid, with why). The intake (alerts/intake.ts) decides
 * what is stored; this holds the statements.
 */

/** Rejected alerts kept in the delivery's row; the count says how many in all. */
export const REJECTED_KEPT = 100;

/** The delivery's body as bytes, before it is parsed; its id. */
export async function insertDelivery(db: Db, source: AlertSource, body: Uint8Array): Promise<number> {
  const { rows } = await db.executeSql<{ id: string }>(
    'INSERT INTO alert_deliveries (source, body) VALUES ($1, $2) RETURNING id',
    [source, body],
  );
  return Number(rows[0]!.id);
}

export async function markDeliveryAccepted(
  db: Db,
  delivery: number,
  counts: { accepted: number; duplicates: number; rejected: readonly RejectedAlert[] },
): Promise<void> {
  await db.executeSql(
    `UPDATE alert_deliveries SET outcome = 'accepted', accepted = $2, duplicates = $3, rejected = $4,
       rejected_count = $5 WHERE id = $1`,
    [
      delivery,
      counts.accepted,
      counts.duplicates,
      JSON.stringify(counts.rejected.slice(0, REJECTED_KEPT)),
      counts.rejected.length,
    ],
  );
}

export async function markDeliveryInvalid(
  db: Db,
  delivery: number,
  error: string,
  rejected: readonly RejectedAlert[],
): Promise<void> {
  await db.executeSql(
    `UPDATE alert_deliveries SET outcome = 'invalid', error = $2, rejected = $3, rejected_count = $4
     WHERE id = $1`,
    [delivery, error, JSON.stringify(rejected.slice(0, REJECTED_KEPT)), rejected.length],
  );
}

/**
 * The alerts row (valid = false) that records what of a delivery could not be used, and why: as
 * before alert deliveries had a table of their own, so a look at the alerts shows what was refused.
 */
export async function insertInvalidAlert(
  db: Db,
  source: AlertSource,
  delivery: number,
  error: string,
): Promise<number> {
  const { rows } = await db.executeSql<{ id: string }>(
    'INSERT INTO alerts (source, delivery_id, valid, error) VALUES ($1, $2, false, $3) RETURNING id',
    [source, delivery, error],
  );
  return Number(rows[0]!.id);
}

export interface ValidAlertRow {
  source: AlertSource;
  delivery: number;
  payload: unknown;
  dedupKey: string;
  fingerprint: string;
  status: string;
  host: string | null;
  problem: string;
}

/** A valid alert's id, or undefined when an alert of the same dedup key is already stored. */
export async function insertValidAlert(db: Db, a: ValidAlertRow): Promise<number | undefined> {
  const { rows } = await db.executeSql<{ id: string }>(
    `INSERT INTO alerts (source, delivery_id, payload, valid, dedup_key, fingerprint, status, host, problem)
     VALUES ($1, $2, $3, true, $4, $5, $6, $7, $8)
     ON CONFLICT (dedup_key) DO NOTHING RETURNING id`,
    [a.source, a.delivery, JSON.stringify(a.payload), a.dedupKey, a.fingerprint, a.status, a.host, a.problem],
  );
  return rows[0] === undefined ? undefined : Number(rows[0].id);
}

export async function attachAlert(db: Db, alertId: number, incidentId: number): Promise<void> {
  await db.executeSql('UPDATE alerts SET incident_id = $1 WHERE id = $2', [incidentId, alertId]);
}
