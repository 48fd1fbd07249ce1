import { redact } from '../analyze/redact.ts';
import { CodedError, ErrorCode } from '../errors.ts';
import type { Db } from '../store/db.ts';
import {
  getIncident,
  type Incident,
  type IncidentStatus,
  insertIncident,
  openIncidentOfGroup,
  openIncidentOnHost,
  timelineRows,
  updateIncidentCommander,
  updateIncidentStatus,
} from '../store/incidents.ts';
import { rootMessageKey } from '../store/message-keys.ts';
import { appendAudit, queueThreadMessage } from '../store/records.ts';
import { describeAudit } from './audit-text.ts';

/**
 * Incidents in the store: opening one by hand (/investigate), state changes, and the timeline a
 * postmortem starts from. Alert-driven opening lives in alerts/intake.ts, under the same rule:
 * one open incident per host and problem.
 */

export type { Incident, IncidentStatus } from '../store/incidents.ts';
export { getIncident, incidentByThread } from '../store/incidents.ts';

export const NEXT_STATUS: Record<IncidentStatus, IncidentStatus[]> = {
  open: ['investigating', 'mitigated', 'resolved'],
  investigating: ['mitigated', 'resolved'],
  mitigated: ['investigating', 'resolved'],
  resolved: [],
};

/** `/investigate <host> [note]`: the open incident for the host's problem, or a new one. */
export async function openIncidentByHand(
  db: Db,
  input: { host: string; note: string; user: string; channel: string },
): Promise<{ incident: Incident; opened: boolean }> {
  return db.transaction(async (tx) => {
    const group = `${input.host}:manual`;
    const open = await openIncidentOnHost(tx, input.host);
    if (open) {
      // Joined, not opened: the asker's note is kept on the record (the command posts it to the thread).
      await audit(tx, input.user, 'incident.joined', open.id, { via: 'slash_command', note: input.note });
      return { incident: open, opened: false };
    }
    const title = input.note ? `${input.host}: ${input.note}` : `Investigation on ${input.host}`;
    const created = await insertIncident(tx, {
      groupKey: group,
      host: input.host,
      problem: 'manual',
      title: title.slice(0, 300),
      openedBy: input.user,
      commander: input.user,
    });
    const incident = created ?? (await openIncidentOfGroup(tx, group))!;
    if (created) {
      await queueThreadMessage(tx, {
        incidentId: incident.id,
        key: rootMessageKey(incident.id),
        role: 'root',
        fallbackChannel: input.channel,
        body: { type: 'incident.root' },
      });
      await audit(tx, input.user, 'incident.opened', incident.id, { via: 'slash_command', note: input.note });
    }
    return { incident, opened: created !== undefined };
  });
}

export async function setStatus(db: Db, id: number, status: IncidentStatus, user: string): Promise<Incident> {
  return db.transaction(async (tx) => {
    const before = await getIncident(tx, id, true);
    if (!before) throw new CodedError(ErrorCode.NotFound, `no incident #${id}`);
    if (before.status === status) return before;
    if (!NEXT_STATUS[before.status].includes(status)) {
      throw new CodedError(
        ErrorCode.InvalidTransition,
        `incident #${id} is ${before.status}; it cannot become ${status}`,
      );
    }
    const after = await updateIncidentStatus(tx, id, status);
    await audit(tx, user, 'incident.status', id, { from: before.status, to: status });
    return after;
  });
}

export async function setCommander(db: Db, id: number, user: string): Promise<void> {
  await db.transaction(async (tx) => {
    await updateIncidentCommander(tx, id, user);
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
  return (await timelineRows(db, id)).map((r) => ({
    at: r.at,
    what:
      r.what ??
      describeAudit({
        action: r.audit?.action ?? '?',
        actor: r.audit?.actor ?? '?',
        subject: {
          ...r.audit?.subject,
          // What was proposed, as the postmortem needs it; redacted, as everything for Slack is.
          ...(r.proposed === null ? {} : { text: redact(r.proposed).text }),
        },
      }),
  }));
}

function audit(tx: Db, actor: string, action: string, incidentId: number, subject: object): Promise<void> {
  return appendAudit(tx, { actor, action, incidentId, subject });
}
