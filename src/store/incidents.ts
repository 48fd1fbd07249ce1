import type { Db } from './db.ts';

/**
 * The incidents table: rows read and written, mapped once. One open incident per group key (host
 * and problem) is the partial unique index's rule; the inserts here yield to it (ON CONFLICT DO
 * NOTHING) and the caller joins the winner. What may change when is incidents/incidents.ts's.
 */

export type IncidentStatus = 'open' | 'investigating' | 'mitigated' | 'resolved';

export interface Incident {
  id: number;
  groupKey: string;
  host: string;
  problem: string;
  title: string;
  status: IncidentStatus;
  severity: 'critical' | 'warning' | 'info';
  commander: string | null;
  channel: string | null;
  rootTs: string | null;
  previousIncidentId: number | null;
  openedBy: string;
  openedAt: Date;
  resolvedAt: Date | null;
}

interface Row {
  id: string | number;
  group_key: string;
  host: string;
  problem: string;
  title: string;
  status: IncidentStatus;
  severity: Incident['severity'];
  commander: string | null;
  channel: string | null;
  root_ts: string | null;
  previous_incident_id: string | number | null;
  opened_by: string;
  opened_at: Date | string;
  resolved_at: Date | string | null;
}

const COLUMNS =
  'id, group_key, host, problem, title, status, severity, commander, channel, root_ts, previous_incident_id, opened_by, opened_at, resolved_at';

function fromRow(r: Row): Incident {
  return {
    id: Number(r.id),
    groupKey: r.group_key,
    host: r.host,
    problem: r.problem,
    title: r.title,
    status: r.status,
    severity: r.severity,
    commander: r.commander,
    channel: r.channel,
    rootTs: r.root_ts,
    previousIncidentId: r.previous_incident_id === null ? null : Number(r.previous_incident_id),
    openedBy: r.opened_by,
    openedAt: new Date(r.opened_at),
    resolvedAt: r.resolved_at === null ? null : new Date(r.resolved_at),
  };
}

async function one(db: Db, where: string, values: unknown[]): Promise<Incident | undefined> {
  const { rows } = await db.executeSql<Row>(`SELECT ${COLUMNS} FROM incidents WHERE ${where}`, values);
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** With `lock`, the row is held FOR UPDATE until the transaction ends. */
export function getIncident(db: Db, id: number, lock = false): Promise<Incident | undefined> {
  return one(db, `id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
}

/** The incident whose thread a message belongs to (its root ts, in a channel). */
export function incidentByThread(db: Db, channel: string, threadTs: string): Promise<Incident | undefined> {
  return one(db, 'channel = $1 AND root_ts = $2', [channel, threadTs]);
}

/** The open (not resolved) incident of a group key. */
export function openIncidentOfGroup(db: Db, groupKey: string): Promise<Incident | undefined> {
  return one(db, `group_key = $1 AND status <> 'resolved'`, [groupKey]);
}

/** The oldest open incident on a host, whatever its problem. */
export function openIncidentOnHost(db: Db, host: string): Promise<Incident | undefined> {
  return one(db, `host = $1 AND status <> 'resolved' ORDER BY opened_at LIMIT 1`, [host]);
}

/** The id of the group's most recently resolved incident, if any. */
export async function lastResolvedOfGroup(db: Db, groupKey: string): Promise<number | null> {
  const { rows } = await db.executeSql<{ id: string }>(
    `SELECT id FROM incidents WHERE group_key = $1 AND status = 'resolved' ORDER BY resolved_at DESC LIMIT 1`,
    [groupKey],
  );
  return rows[0] ? Number(rows[0].id) : null;
}

export interface NewIncident {
  groupKey: string;
  host: string;
  problem: string;
  title: string;
  openedBy: string;
  /** Default: the column's ('warning'). */
  severity?: Incident['severity'];
  commander?: string;
  previousIncidentId?: number | null;
}

/** A new open incident, or undefined when its group already has one open. */
export async function insertIncident(db: Db, n: NewIncident): Promise<Incident | undefined> {
  const { rows } = await db.executeSql<Row>(
    `INSERT INTO incidents (group_key, host, problem, title, severity, opened_by, commander, previous_incident_id)
     VALUES ($1, $2, $3, $4, coalesce($5, 'warning'), $6, $7, $8)
     ON CONFLICT (group_key) WHERE status <> 'resolved' DO NOTHING RETURNING ${COLUMNS}`,
    [
      n.groupKey,
      n.host,
      n.problem,
      n.title,
      n.severity ?? null,
      n.openedBy,
      n.commander ?? null,
      n.previousIncidentId ?? null,
    ],
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** Sets the status; resolved_at is set when it becomes resolved and cleared otherwise. */
export async function updateIncidentStatus(db: Db, id: number, status: IncidentStatus): Promise<Incident> {
  const { rows } = await db.executeSql<Row>(
    `UPDATE incidents SET status = $2, updated_at = now(), resolved_at = CASE WHEN $2 = 'resolved' THEN now() ELSE NULL END
     WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, status],
  );
  return fromRow(rows[0]!);
}

export async function updateIncidentCommander(db: Db, id: number, user: string): Promise<void> {
  await db.executeSql('UPDATE incidents SET commander = $2, updated_at = now() WHERE id = $1', [id, user]);
}

/** The incident's root message is rendered again: what it shows changed (marked stale, the outbox's next drain updates it). */
export async function markRootStale(db: Db, incidentId: number): Promise<void> {
  await db.executeSql('UPDATE incidents SET root_hash = NULL WHERE id = $1', [incidentId]);
}

/**
 * Open disk incidents, and ones opened with /investigate, opened before `openedBefore` and never
 * given a collection job: their collection was lost (the bot died between the alert's or the
 * command's commit and the send).
 */
export async function incidentsWithoutCollection(
  db: Db,
  openedBefore: Date,
  limit: number,
): Promise<Array<{ id: number; host: string }>> {
  const { rows } = await db.executeSql<{ id: string; host: string }>(
    `SELECT i.id, i.host FROM incidents i
     WHERE i.problem IN ('disk', 'manual') AND i.status <> 'resolved' AND i.opened_at < $1
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.incident_id = i.id AND j.kind = 'collect-host')
     ORDER BY i.id LIMIT $2`,
    [openedBefore, limit],
  );
  return rows.map((r) => ({ id: Number(r.id), host: r.host }));
}

/** One line of an incident's timeline: a described row (`what`), or an audit entry to describe. */
export interface TimelineRow {
  at: Date;
  what: string | null;
  audit: { action: string; actor: string; subject: Record<string, unknown> } | null;
  /** For a proposal.created audit entry: the proposed text. */
  proposed: string | null;
}

/**
 * Everything recorded about an incident, in order: alerts, jobs (started and ended), findings,
 * audit entries. Rows written in one transaction share its timestamp, so ties are broken by what
 * they are and then by id (the order they were written in).
 */
export async function timelineRows(db: Db, id: number): Promise<TimelineRow[]> {
  const { rows } = await db.executeSql<{
    at: Date | string;
    what: string | null;
    action: string | null;
    actor: string | null;
    subject: unknown;
    proposed: string | null;
  }>(
    `SELECT at, what, action, actor, subject,
            CASE WHEN action = 'proposal.created'
                 THEN (SELECT p.text FROM proposals p WHERE p.id = (subject->>'proposal')::bigint) END AS proposed
     FROM (
       SELECT received_at AS at, 0 AS source, id, 'alert ' || coalesce(status, 'invalid') || ': ' || coalesce(problem, '') || ' on ' || coalesce(host, '?') AS what,
              NULL::text AS action, NULL::text AS actor, NULL::jsonb AS subject
         FROM alerts WHERE incident_id = $1
       UNION ALL
       SELECT coalesce(started_at, created_at), 1, id, 'job ' || kind || CASE WHEN started_at IS NULL THEN ' queued' ELSE ' started' END,
              NULL, NULL, NULL
         FROM jobs WHERE incident_id = $1
       UNION ALL
       SELECT created_at, 2, id, 'finding (' || severity || '): ' || title, NULL, NULL, NULL
         FROM findings WHERE incident_id = $1
       UNION ALL
       SELECT finished_at, 3, id, 'job ' || kind || ' ' || state, NULL, NULL, NULL
         FROM jobs WHERE incident_id = $1 AND finished_at IS NOT NULL
       UNION ALL
       SELECT at, 4, id, NULL, action, actor, subject FROM audit_log WHERE incident_id = $1
     ) entries
     ORDER BY at, source, id`,
    [id],
  );
  return rows.map((r) => ({
    at: new Date(r.at),
    what: r.what,
    audit:
      r.what === null
        ? {
            action: r.action ?? '?',
            actor: r.actor ?? '?',
            subject: (typeof r.subject === 'string' ? JSON.parse(r.subject) : (r.subject ?? {})) as Record<
              string,
              unknown
            >,
          }
        : null,
    proposed: r.proposed,
  }));
}
