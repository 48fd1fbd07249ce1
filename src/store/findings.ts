import type { Db } from './db.ts';

/**
 * The findings table: what collection and analysis found, stored redacted (jobs/workers/job-run.ts),
 * read by the agent, its tools and the thread.
 */

/** The body of a finding (jsonb): its detail and how many values were redacted in it. */
export interface FindingBody {
  detail?: string;
  redactions?: number;
  [other: string]: unknown;
}

export interface StoredFinding {
  id: number;
  incidentId: number;
  kind: string;
  severity: string;
  title: string;
  body: FindingBody;
}

interface FindingRow {
  id: string;
  incident_id: string;
  kind: string;
  severity: string;
  title: string;
  body: FindingBody | null;
}

// body is jsonb: both drivers hand it back parsed.
const toFinding = (r: FindingRow): StoredFinding => ({
  id: Number(r.id),
  incidentId: Number(r.incident_id),
  kind: r.kind,
  severity: r.severity,
  title: r.title,
  body: r.body ?? {},
});

const COLUMNS = 'id, incident_id, kind, severity, title, body';

/** Which findings: of an incident (optionally one severity, optionally only those the agent was not told of) or of one job. */
export type FindingsOf =
  | { incidentId: number; severity?: string | undefined; untold?: boolean }
  | { jobId: number };

/** The query for `of`, oldest first, at most $limit: a pure function of the filter, as pg-boss's plans are. */
export function findingsQuery(of: FindingsOf, limit: number): { text: string; values: unknown[] } {
  if ('jobId' in of)
    return {
      text: `SELECT ${COLUMNS} FROM findings WHERE job_id = $1 ORDER BY id LIMIT $2`,
      values: [of.jobId, limit],
    };
  const where = ['incident_id = $1'];
  const values: unknown[] = [of.incidentId];
  if (of.severity !== undefined) {
    values.push(of.severity);
    where.push(`severity = $${values.length}`);
  }
  if (of.untold) where.push('agent_told_at IS NULL');
  values.push(limit);
  return {
    text: `SELECT ${COLUMNS} FROM findings WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${values.length}`,
    values,
  };
}

export async function findingsOf(db: Db, of: FindingsOf, limit: number): Promise<StoredFinding[]> {
  const { text, values } = findingsQuery(of, limit);
  const { rows } = await db.executeSql<FindingRow>(text, values);
  return rows.map(toFinding);
}

export async function insertFinding(
  db: Db,
  finding: {
    incidentId: number;
    jobId: number;
    kind: string;
    severity: string;
    title: string;
    body: FindingBody;
  },
): Promise<void> {
  await db.executeSql(
    'INSERT INTO findings (incident_id, job_id, kind, severity, title, body) VALUES ($1, $2, $3, $4, $5, $6)',
    [
      finding.incidentId,
      finding.jobId,
      finding.kind,
      finding.severity,
      finding.title,
      JSON.stringify(finding.body),
    ],
  );
}

/** Findings stored before they were redacted at rest (no `redactions` in their body), by incident. */
export async function unredactedFindings(db: Db, limit: number): Promise<StoredFinding[]> {
  const { rows } = await db.executeSql<FindingRow>(
    `SELECT ${COLUMNS} FROM findings WHERE NOT (body ? 'redactions') ORDER BY incident_id, id LIMIT $1`,
    [limit],
  );
  return rows.map(toFinding);
}

export async function rewriteFinding(db: Db, id: number, title: string, body: FindingBody): Promise<void> {
  await db.executeSql('UPDATE findings SET title = $2, body = $3 WHERE id = $1', [
    id,
    title,
    JSON.stringify(body),
  ]);
}
