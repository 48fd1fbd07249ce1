import type { Db } from './db.ts';

/**
 * What /readyz, /metrics and doctor read from the store: whether it answers, and counts and
 * latency distributions over what it holds. Each is one statement; the histograms are built by
 * one pure function of their source query and bounds.
 */

/** Resolves when the store answers a trivial query; rejects with the driver's error when not. */
export async function ping(db: Db): Promise<void> {
  await db.executeSql('SELECT 1');
}

/** Incidents not yet resolved, by status (a status with none is absent). */
export async function openIncidentCounts(db: Db): Promise<Array<{ status: string; n: number }>> {
  const { rows } = await db.executeSql<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM incidents WHERE status <> 'resolved' GROUP BY status`,
  );
  return rows;
}

export async function jobCounts(db: Db): Promise<Array<{ state: string; n: number }>> {
  const { rows } = await db.executeSql<{ state: string; n: number }>(
    'SELECT state, count(*)::int AS n FROM jobs GROUP BY state',
  );
  return rows;
}

/** Seconds from a proposal being posted to its approval, over the last day: count, sum, p50, p99. */
export async function approvalLatency(
  db: Db,
): Promise<{ n: number; total: number | null; p50: number | null; p99: number | null }> {
  const { rows } = await db.executeSql<{
    n: number;
    total: number | null;
    p50: number | null;
    p99: number | null;
  }>(
    `SELECT count(*)::int AS n, sum(seconds)::float8 AS total,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::float8 AS p50,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds)::float8 AS p99
     FROM (SELECT extract(epoch FROM a.decided_at - p.created_at) AS seconds
           FROM approvals a JOIN proposals p ON p.id = a.proposal_id
           WHERE a.decision = 'approved' AND a.decided_at > now() - interval '1 day') latencies`,
  );
  return rows[0]!;
}

/**
 * The observations of each histogram, one `v` per row, over everything the store holds (so the
 * counts only grow, and a restarted bot reports the same): from an incident's first alert to its
 * root message posted in Slack; from the approval that completed a proposal's approvals to its run
 * starting (both on the database's clock); an analysis job's bytes over its duration.
 */
export const HISTOGRAM_SOURCES = {
  alertToRoot: `SELECT greatest(0, extract(epoch FROM m.posted_at - a.first))::float8 AS v
      FROM thread_messages m
      JOIN (SELECT incident_id, min(received_at) AS first FROM alerts
             WHERE incident_id IS NOT NULL GROUP BY incident_id) a ON a.incident_id = m.incident_id
     WHERE m.role = 'root' AND m.posted_at IS NOT NULL`,
  approvalToRun: `SELECT greatest(0, extract(epoch FROM r.started_at - q.last))::float8 AS v
      FROM runs r
      JOIN (SELECT proposal_id, max(recorded_at) AS last FROM approvals
             WHERE decision = 'approved' GROUP BY proposal_id) q ON q.proposal_id = r.proposal_id`,
  analysisThroughput: `SELECT ((result->>'bytes')::float8
             / greatest(extract(epoch FROM finished_at - started_at), 0.001))::float8 AS v
      FROM jobs
     WHERE kind = 'analyze-evidence' AND state = 'succeeded' AND started_at IS NOT NULL
       AND finished_at IS NOT NULL AND result->>'bytes' IS NOT NULL`,
};

/** One statement: the cumulative count under each bound, then (le NULL) the total count and sum. */
export function histogramSql(source: string, buckets: readonly number[]): string {
  const bounds = buckets.map((b) => `${Number(b)}::float8`).join(', ');
  return `WITH s AS (${source})
    SELECT b.le, count(s.v)::int AS n, NULL::float8 AS total
      FROM unnest(ARRAY[${bounds}]) AS b(le) LEFT JOIN s ON s.v <= b.le GROUP BY b.le
    UNION ALL
    SELECT NULL, count(*)::int, coalesce(sum(v), 0)::float8 FROM s
    ORDER BY 1 NULLS LAST`;
}

export interface HistogramSamples {
  count: number;
  sum: number;
  /** Cumulative: the observations at or under each bound. */
  buckets: Array<{ le: number; count: number }>;
}

export async function histogram(
  db: Db,
  source: keyof typeof HISTOGRAM_SOURCES,
  buckets: readonly number[],
): Promise<HistogramSamples> {
  const { rows } = await db.executeSql<{ le: number | null; n: number; total: number | null }>(
    histogramSql(HISTOGRAM_SOURCES[source], buckets),
  );
  const totals = rows.find((r) => r.le === null);
  return {
    count: Number(totals?.n ?? 0),
    sum: Number(totals?.total ?? 0),
    buckets: rows.filter((r) => r.le !== null).map((r) => ({ le: Number(r.le), count: Number(r.n) })),
  };
}
