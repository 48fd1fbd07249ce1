import type { Db } from './db.ts';

/** An incident's valid alerts as the root message reads them: each alert's latest delivery, the first. */

export interface StoredAlertState {
  source: 'alertmanager' | 'grafana' | 'generic';
  fingerprint: string;
  status: 'firing' | 'resolved';
  /** alerts.payload: the alert as its schema read it (before migration 9, its whole delivery). */
  payload: unknown;
}

/** The latest delivery of each of the incident's alerts (by fingerprint), firing or resolved. */
export async function latestAlertStates(db: Db, incidentId: number): Promise<StoredAlertState[]> {
  const { rows } = await db.executeSql<StoredAlertState>(
    `SELECT DISTINCT ON (fingerprint) source, payload, fingerprint, status FROM alerts
     WHERE incident_id = $1 AND valid ORDER BY fingerprint, received_at DESC, id DESC`,
    [incidentId],
  );
  return rows;
}

/** The payload of the incident's first valid alert, if any. */
export async function firstAlertPayload(db: Db, incidentId: number): Promise<unknown> {
  const { rows } = await db.executeSql<{ payload: unknown }>(
    'SELECT payload FROM alerts WHERE incident_id = $1 AND valid ORDER BY id LIMIT 1',
    [incidentId],
  );
  return rows[0]?.payload;
}
