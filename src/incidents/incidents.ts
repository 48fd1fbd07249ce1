import { redact } from '../analyze/redact.ts';
import { CodedError, ErrorCode } from '../errors.ts';
import type { Db } from '../store/db.ts';
import { appendAudit, queueThreadMessage } from '../store/records.ts';
import { describeAudit } from './audit-text.ts';

/**
 * Incidents in the store: opening one by hand (/investigate), state changes, and the timeline a
 * postmortem starts from. Alert-driven opening lives in alerts/intake.ts, under the same rule:
 * one open incident per host and problem.
 */

export type IncidentStatus = 'open' | 'investigating' | 'mitigated' | 'resolved';

export const NEXT_STATUS: Record<IncidentStatus, IncidentStatus[]> = {
  open: ['investigating', 'mitigated', 'resolved'],
  investigating: ['mitigated', 'resolved'],
  mitigated: ['investigating', 'resolved'],
  resolved: [],
};

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

export async function getIncident(db: Db, id: number): Promise<Incident | undefined> {
  const { rows } = await db.executeSql<Row>(`SELECT ${COLUMNS} FROM incidents WHERE id = $1`, [id]);
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** The incident whose thread a message belongs to (its root ts, in a channel). */
export async function incidentByThread(
  db: Db,
  channel: string,
  threadTs: string,
): Promise<Incident | undefined> {
  const { rows } = await db.executeSql<Row>(
    `SELECT ${COLUMNS} FROM incidents WHERE channel = $1 AND root_ts = $2`,
    [channel, threadTs],
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** `/investigate <host> [note]`: the open incident for the host's problem, or a new one. */
export async function openIncidentByHand(
  db: Db,
  input: { host: string; note: string; user: string; channel: string },
): Promise<{ incident: Incident; opened: boolean }> {
  return db.transaction(async (tx) => {
    const group = `${input.host}:manual`;
    const open = await tx.executeSql<Row>(
      `SELECT ${COLUMNS} FROM incidents WHERE host = $1 AND status <> 'resolved' ORDER BY opened_at LIMIT 1`,
      [input.host],
    );
    if (open.rows[0]) {
      // Joined, not opened: the asker's note is kept on the record (the command posts it to the thread).
      const incident = fromRow(open.rows[0]);
      await audit(tx, input.user, 'incident.joined', incident.id, { via: 'slash_command', note: input.note });
      return { incident, opened: false };
    }
    const title = input.note ? `${input.host}: ${input.note}` : `Investigation on ${input.host}`;
    const created = await tx.executeSql<Row>(
      `INSERT INTO incidents (group_key, host, problem, title, opened_by, commander)
       VALUES ($1, $2, 'manual', $3, $4, $4)
       ON CONFLICT (group_key) WHERE status <> 'resolved' DO NOTHING RETURNING ${COLUMNS}`,
      [group, input.host, title.slice(0, 300), input.user],
    );
    const row =
      created.rows[0] ??
      (
        await tx.executeSql<Row>(
          `SELECT ${COLUMNS} FROM incidents WHERE group_key = $1 AND status <> 'resolved'`,
          [group],
        )
      ).rows[0]!;
    const incident = fromRow(row);
    if (created.rows[0]) {
      await queueThreadMessage(tx, {
        incidentId: incident.id,
        key: `incident:${incident.id}:root`,
        role: 'root',
        fallbackChannel: input.channel,
        body: { type: 'incident.root' },
      });
      await audit(tx, input.user, 'incident.opened', incident.id, { via: 'slash_command', note: input.note });
    }
    return { incident, opened: created.rows[0] !== undefined };
  });
}

export async function setStatus(db: Db, id: number, status: IncidentStatus, user: string): Promise<Incident> {
  return db.transaction(async (tx) => {
    const current = await tx.executeSql<Row>(`SELECT ${COLUMNS} FROM incidents WHERE id = $1 FOR UPDATE`, [
      id,
    ]);
    if (!current.rows[0]) throw new CodedError(ErrorCode.NotFound, `no incident #${id}`);
    const before = fromRow(current.rows[0]);
    if (before.status === status) return before;
    if (!NEXT_STATUS[before.status].includes(status)) {
      throw new CodedError(
        ErrorCode.InvalidTransition,
        `incident #${id} is ${before.status}; it cannot become ${status}`,
      );
    }
    const { rows } = await tx.executeSql<Row>(
      `UPDATE incidents SET status = $2, updated_at = now(), resolved_at = CASE WHEN $2 = 'resolved' THEN now() ELSE NULL END
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, status],
    );
    await audit(tx, user, 'incident.status', id, { from: before.status, to: status });
    return fromRow(rows[0]!);
  });
}

export async function setCommander(db: Db, id: number, user: string): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.executeSql('UPDATE incidents SET commander = $2, updated_at = now() WHERE id = $1', [id, user]);
    await audit(tx, user, 'incident.commander', id, { commander: user });
  });
}

export interface TimelineEntry {
  at: Date;
  what: string;
}

/**
 * Everything recorded about an incident, in order: alerts, audit entries, findings, jobs. A job
 * shows twice, when it started and how it ended, each at its own time. Rows written in one
 * transaction share its timestamp (`now()`), so ties are broken by what they are (an alert
 * before what it opened; a job's findings before its end and the audit entry of it) and then by
 * id, which keeps the order in which they were written. Audit entries read as words
 * (audit-text.ts).
 */
export async function timeline(db: Db, id: number): Promise<TimelineEntry[]> {
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
    what:
      r.what ??
      describeAudit({
        action: r.action ?? '?',
        actor: r.actor ?? '?',
        subject: {
          ...((typeof r.subject === 'string' ? JSON.parse(r.subject) : (r.subject ?? {})) as Record<
            string,
            unknown
          >),
          // What was proposed, as the postmortem needs it; redacted, as everything for Slack is.
          ...(r.proposed === null ? {} : { text: redact(r.proposed).text }),
        },
      }),
  }));
}

function audit(tx: Db, actor: string, action: string, incidentId: number, subject: object): Promise<void> {
  return appendAudit(tx, { actor, action, incidentId, subject });
}
