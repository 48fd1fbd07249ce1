import type { Db } from './db.ts';
import { asDate } from './proposals.ts';

/**
 * The runs table (one run per proposal, ever): rows read and written, mapped once. When a run may start or end is the approval service's decision.
 */

export interface RunRecord {
  id: number;
  state: 'running' | 'succeeded' | 'failed';
  startedAt: Date;
  finishedAt: Date | null;
  exitCode: number | null;
  outputBytes: number | null;
  error: string | null;
}

export async function getRun(db: Db, proposalId: number): Promise<RunRecord | undefined> {
  const { rows } = await db.executeSql<{
    id: string;
    state: RunRecord['state'];
    started_at: Date | string;
    finished_at: Date | string | null;
    exit_code: number | null;
    output_bytes: string | null;
    error: string | null;
  }>('SELECT * FROM runs WHERE proposal_id = $1', [proposalId]);
  const r = rows[0];
  if (!r) return undefined;
  return {
    id: Number(r.id),
    state: r.state,
    startedAt: asDate(r.started_at),
    finishedAt: r.finished_at === null ? null : asDate(r.finished_at),
    exitCode: r.exit_code,
    outputBytes: r.output_bytes === null ? null : Number(r.output_bytes),
    error: r.error,
  };
}

/** A new running run; the trigger on runs checks the approvals of this hash again. */
export async function insertRun(
  tx: Db,
  proposalId: number,
  sha256: string,
  heartbeatAt: Date,
): Promise<RunRecord> {
  const { rows } = await tx.executeSql<{ id: string; started_at: Date | string }>(
    'INSERT INTO runs (proposal_id, sha256, heartbeat_at) VALUES ($1, $2, $3) RETURNING id, started_at',
    [proposalId, sha256, heartbeatAt],
  );
  const run = rows[0]!;
  return {
    id: Number(run.id),
    state: 'running',
    startedAt: asDate(run.started_at),
    finishedAt: null,
    exitCode: null,
    outputBytes: null,
    error: null,
  };
}

export interface RunEndRow {
  ok: boolean;
  exitCode: number | null;
  outputBytes: number | null;
  result: object;
  error: string | null;
}

/** Ends a running run; its duration in milliseconds, or undefined when it had already ended. */
export async function endRunningRun(tx: Db, runId: number, end: RunEndRow): Promise<number | undefined> {
  const { rows } = await tx.executeSql<{ ms: number | string }>(
    `UPDATE runs SET state = $2, finished_at = now(), exit_code = $3, output_bytes = $4, result = $5, error = $6
     WHERE id = $1 AND state = 'running'
     RETURNING (extract(epoch FROM finished_at - started_at) * 1000)::bigint AS ms`,
    [
      runId,
      end.ok ? 'succeeded' : 'failed',
      end.exitCode,
      end.outputBytes,
      JSON.stringify(end.result),
      end.error,
    ],
  );
  return rows.length === 0 ? undefined : Number(rows[0]?.ms ?? 0);
}

/** The worker of a running run is alive at `at`; the heartbeat never goes back. */
export async function beatRun(db: Db, runId: number, at: Date): Promise<void> {
  await db.executeSql(
    `UPDATE runs SET heartbeat_at = greatest(heartbeat_at, $2) WHERE id = $1 AND state = 'running'`,
    [runId, at],
  );
}

/** Running runs whose heartbeat is older than `before`, locked (SKIP LOCKED: each swept once). */
export async function lockStaleRuns(
  tx: Db,
  before: Date,
): Promise<Array<{ runId: number; proposalId: number; heartbeatAt: Date }>> {
  const { rows } = await tx.executeSql<{ id: string; proposal_id: string; heartbeat_at: Date | string }>(
    `SELECT id, proposal_id, heartbeat_at FROM runs WHERE state = 'running' AND heartbeat_at < $1
     ORDER BY id FOR UPDATE SKIP LOCKED`,
    [before],
  );
  return rows.map((r) => ({
    runId: Number(r.id),
    proposalId: Number(r.proposal_id),
    heartbeatAt: asDate(r.heartbeat_at),
  }));
}

/** Fails a run the sweeper found abandoned. */
export async function failRun(tx: Db, runId: number, result: object, error: string): Promise<void> {
  await tx.executeSql(
    `UPDATE runs SET state = 'failed', finished_at = now(), result = $2, error = $3 WHERE id = $1`,
    [runId, JSON.stringify(result), error],
  );
}
