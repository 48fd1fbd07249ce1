import type { FleetIncident } from '../incidents/signature.ts';
import type { Db } from './db.ts';

/**
 * What the Slack side reads of the fleet: the latest incidents with their latest successful
 * analysis, what an analysis found, what a past incident ran, the incidents still open. Matching
 * and rendering are pure (incidents/signature.ts, slack/blocks/).
 */

export interface FleetRow {
  id: number;
  host: string;
  status: FleetIncident['status'];
  openedAt: Date;
  /** The result of the incident's latest successful analysis (jobs.result), if any. */
  analysis: unknown;
}

/** The latest `limit` incidents, newest first, each with its latest successful analysis's result. */
export async function latestIncidentsWithAnalysis(db: Db, limit: number): Promise<FleetRow[]> {
  const { rows } = await db.executeSql<{
    id: string;
    host: string;
    status: FleetRow['status'];
    opened_at: Date | string;
    result: unknown;
  }>(
    `SELECT i.id, i.host, i.status, i.opened_at, j.result FROM incidents i
     LEFT JOIN LATERAL (
       SELECT result FROM jobs WHERE incident_id = i.id AND kind = 'analyze-evidence' AND state = 'succeeded'
       ORDER BY id DESC LIMIT 1) j ON true
     ORDER BY i.id DESC LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    host: r.host,
    status: r.status,
    openedAt: new Date(r.opened_at),
    analysis: r.result,
  }));
}

/** The incident's latest successful analysis: its result and its findings (stored redacted), in order. */
export async function latestAnalysis<Severity extends string>(
  db: Db,
  incidentId: number,
): Promise<{ result: unknown; findings: Array<{ severity: Severity; title: string }> } | undefined> {
  const job = await db.executeSql<{ id: string; result: unknown }>(
    `SELECT id, result FROM jobs WHERE incident_id = $1 AND kind = 'analyze-evidence' AND state = 'succeeded'
     ORDER BY id DESC LIMIT 1`,
    [incidentId],
  );
  const row = job.rows[0];
  if (!row) return undefined;
  const found = await db.executeSql<{ severity: Severity; title: string }>(
    'SELECT severity, title FROM findings WHERE job_id = $1 ORDER BY id',
    [row.id],
  );
  return { result: row.result, findings: found.rows };
}

/** The kinds of the incident's proposals whose runs succeeded, in the runs' order. */
export async function succeededRunKinds(db: Db, incidentId: number): Promise<string[]> {
  const { rows } = await db.executeSql<{ kind: string }>(
    `SELECT p.kind FROM runs r JOIN proposals p ON p.id = r.proposal_id
     WHERE p.incident_id = $1 AND r.state = 'succeeded' ORDER BY r.id`,
    [incidentId],
  );
  return rows.map((r) => r.kind);
}

/** The ids of the incidents not resolved, oldest first. */
export async function unresolvedIncidentIds(db: Db): Promise<number[]> {
  const { rows } = await db.executeSql<{ id: string }>(
    `SELECT id FROM incidents WHERE status <> 'resolved' ORDER BY id`,
  );
  return rows.map((r) => Number(r.id));
}
