import type { Db } from './db.ts';

/**
 * The jobs table: the timeline's view of each queue job (pg-boss keeps its own), with its input,
 * its state and, for an analysis, its result (the correlations the agent reads, the numbers
 * /metrics reads).
 */

/**
 * Records a job as running; a retried job (same queue job id) is the same row, running again.
 * Returns the row's id.
 */
export async function startJob(
  db: Db,
  job: { incidentId: number; kind: string; queueJobId: string; input: object },
): Promise<number> {
  const { rows } = await db.executeSql<{ id: string }>(
    `INSERT INTO jobs (incident_id, kind, queue_job_id, state, input, started_at)
     VALUES ($1, $2, $3, 'running', $4, now())
     ON CONFLICT (queue_job_id) DO UPDATE SET state = 'running', started_at = now(), error = NULL
     RETURNING id`,
    [job.incidentId, job.kind, job.queueJobId, JSON.stringify(job.input)],
  );
  return Number(rows[0]!.id);
}

export async function markJobSucceeded(db: Db, id: number): Promise<void> {
  await db.executeSql(`UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1`, [id]);
}

export async function markJobFailed(db: Db, id: number, error: string): Promise<void> {
  await db.executeSql(`UPDATE jobs SET state = 'failed', finished_at = now(), error = $2 WHERE id = $1`, [
    id,
    error,
  ]);
}

/** A correlation of an analysis, as its job's result keeps it. */
export interface StoredCorrelation {
  value: string;
  kind: string;
  dumps: number;
  total: number;
  stream: boolean;
  why: string;
}

/** What an analysis job keeps as its result. */
export interface AnalysisResult {
  bytes?: number;
  peakRssBytes?: number;
  correlations?: StoredCorrelation[];
  signatures?: unknown[];
}

export async function setJobResult(db: Db, id: number, result: object): Promise<void> {
  await db.executeSql('UPDATE jobs SET result = $2 WHERE id = $1', [id, JSON.stringify(result)]);
}

/** The result of the incident's latest analysis that succeeded with one; undefined when none did. */
export async function latestAnalysisResult(db: Db, incidentId: number): Promise<AnalysisResult | undefined> {
  // result is jsonb: both drivers hand it back parsed.
  const { rows } = await db.executeSql<{ result: AnalysisResult }>(
    `SELECT result FROM jobs WHERE incident_id = $1 AND kind = 'analyze-evidence' AND state = 'succeeded'
       AND result IS NOT NULL ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1`,
    [incidentId],
  );
  return rows[0]?.result;
}

/** A host's latest finished collection (from any incident): named by its input or its incident's host. */
export async function latestCollection(
  db: Db,
  host: string,
): Promise<{ id: number; finishedAt: Date; incidentId: number | null } | undefined> {
  const { rows } = await db.executeSql<{
    id: string;
    finished_at: Date | string;
    incident_id: string | null;
  }>(
    `SELECT j.id, j.finished_at, j.incident_id FROM jobs j LEFT JOIN incidents i ON i.id = j.incident_id
     WHERE j.kind = 'collect-host' AND j.state = 'succeeded' AND (j.input->>'host' = $1 OR i.host = $1)
     ORDER BY j.finished_at DESC NULLS LAST, j.id DESC LIMIT 1`,
    [host],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    id: Number(row.id),
    finishedAt: new Date(row.finished_at),
    incidentId: row.incident_id === null ? null : Number(row.incident_id),
  };
}
