import type { ProposalKind, ProposalState, ProposalText } from '../approvals/proposal.ts';
import type { Db } from './db.ts';

/**
 * The proposals table and its approvals: rows read and written, mapped once. What a decision
 * means (the state machine, the policy, the audit entries) is the approval service's
 * (approvals/service.ts); this holds only the statements.
 */

export interface Proposal extends ProposalText {
  id: number;
  incidentId: number;
  sha256: string;
  why: string;
  expects: string;
  proposedBy: string;
  state: ProposalState;
  createdAt: Date;
  expiresAt: Date;
  approvalsRequired: number;
  selfApprovalAllowed: boolean;
}

export interface ApprovalRecord {
  decision: 'approved' | 'rejected';
  decidedBy: string;
  via: 'button' | 'reaction' | 'cli' | 'policy';
  decidedAt: Date;
}

interface ProposalRow {
  id: string;
  incident_id: string;
  kind: ProposalKind;
  target: string;
  text: string;
  sha256: string;
  why: string;
  expects: string;
  proposed_by: string;
  state: ProposalState;
  created_at: Date | string;
  expires_at: Date | string;
  approvals_required: number;
  self_approval_allowed: boolean;
}

/** PGlite and pg both give timestamptz as Date; a string is taken too, for a driver set to text. */
export const asDate = (v: Date | string) => (v instanceof Date ? v : new Date(v));

function toProposal(row: ProposalRow): Proposal {
  return {
    id: Number(row.id),
    incidentId: Number(row.incident_id),
    kind: row.kind,
    target: row.target,
    text: row.text,
    sha256: row.sha256,
    why: row.why,
    expects: row.expects,
    proposedBy: row.proposed_by,
    state: row.state,
    createdAt: asDate(row.created_at),
    expiresAt: asDate(row.expires_at),
    approvalsRequired: Number(row.approvals_required),
    selfApprovalAllowed: row.self_approval_allowed,
  };
}

/** With `lock`, the row is held FOR UPDATE until the transaction ends. */
export async function getProposal(db: Db, id: number, lock = false): Promise<Proposal | undefined> {
  const { rows } = await db.executeSql<ProposalRow>(
    `SELECT * FROM proposals WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0] ? toProposal(rows[0]) : undefined;
}

export async function listApprovals(db: Db, proposalId: number): Promise<ApprovalRecord[]> {
  const { rows } = await db.executeSql<{
    decision: ApprovalRecord['decision'];
    decided_by: string;
    via: ApprovalRecord['via'];
    decided_at: Date | string;
  }>('SELECT decision, decided_by, via, decided_at FROM approvals WHERE proposal_id = $1 ORDER BY id', [
    proposalId,
  ]);
  return rows.map((r) => ({
    decision: r.decision,
    decidedBy: r.decided_by,
    via: r.via,
    decidedAt: asDate(r.decided_at),
  }));
}

/**
 * Time left by the database's clock, in milliseconds: to decide (the proposal's window from when
 * the database recorded it) and to run (the same window from the last approval that counts; null
 * before one).
 */
export async function timeLeftByDatabase(
  tx: Db,
  proposalId: number,
): Promise<{ toDecide: number; toRun: number | null }> {
  const { rows } = await tx.executeSql<{ to_decide: string | number; to_run: string | number | null }>(
    `SELECT extract(epoch FROM p.recorded_at + (p.expires_at - p.created_at) - clock_timestamp()) * 1000 AS to_decide,
            extract(epoch FROM t.last_approval + (p.expires_at - p.created_at) - clock_timestamp()) * 1000 AS to_run
     FROM proposals p, proposal_tally(p) t WHERE p.id = $1`,
    [proposalId],
  );
  const r = rows[0]!;
  return { toDecide: Number(r.to_decide), toRun: r.to_run === null ? null : Number(r.to_run) };
}

/** The latest proposal of this hash for the incident that is still live or already ran. */
export async function liveProposalByHash(
  db: Db,
  incidentId: number,
  sha256: string,
): Promise<Proposal | undefined> {
  const { rows } = await db.executeSql<ProposalRow>(
    `SELECT * FROM proposals WHERE incident_id = $1 AND sha256 = $2
       AND state IN ('pending', 'approved', 'running', 'done') ORDER BY id DESC LIMIT 1`,
    [incidentId, sha256],
  );
  return rows[0] ? toProposal(rows[0]) : undefined;
}

export type ProposalInsert = Omit<Proposal, 'id' | 'state'>;

export async function insertProposal(tx: Db, p: ProposalInsert): Promise<Proposal> {
  const { rows } = await tx.executeSql<ProposalRow>(
    `INSERT INTO proposals (incident_id, kind, target, text, sha256, why, expects, proposed_by, created_at,
       expires_at, approvals_required, self_approval_allowed)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *`,
    [
      p.incidentId,
      p.kind,
      p.target,
      p.text,
      p.sha256,
      p.why,
      p.expects,
      p.proposedBy,
      p.createdAt,
      p.expiresAt,
      p.approvalsRequired,
      p.selfApprovalAllowed,
    ],
  );
  return toProposal(rows[0]!);
}

export async function insertApproval(
  tx: Db,
  a: ApprovalRecord & { proposalId: number; sha256: string },
): Promise<void> {
  await tx.executeSql(
    `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at) VALUES ($1, $2, $3, $4, $5, $6)`,
    [a.proposalId, a.sha256, a.decision, a.decidedBy, a.via, a.decidedAt],
  );
}

/** Sets the state; with `from`, only while the proposal is still in that state. */
export async function setProposalState(
  tx: Db,
  id: number,
  state: ProposalState,
  from?: ProposalState,
): Promise<void> {
  if (from === undefined) await tx.executeSql('UPDATE proposals SET state = $2 WHERE id = $1', [id, state]);
  else await tx.executeSql('UPDATE proposals SET state = $2 WHERE id = $1 AND state = $3', [id, state, from]);
}

/**
 * Pending proposals past their time by `now` or by the database's clock, locked (SKIP LOCKED:
 * sweepers in several processes take each once).
 */
export async function lockExpiredPending(tx: Db, now: Date): Promise<Proposal[]> {
  const { rows } = await tx.executeSql<ProposalRow>(
    `SELECT * FROM proposals
     WHERE state = 'pending'
       AND (expires_at <= $1 OR recorded_at + (expires_at - created_at) <= clock_timestamp())
     ORDER BY id FOR UPDATE SKIP LOCKED`,
    [now],
  );
  return rows.map(toProposal);
}

/** The id of the proposal whose creation was audited with this tool_use block, if any. */
export async function proposalIdOfToolUse(
  db: Db,
  incidentId: number,
  toolUseId: string,
): Promise<number | undefined> {
  const { rows } = await db.executeSql<{ id: string }>(
    `SELECT subject->>'proposal' AS id FROM audit_log
     WHERE incident_id = $1 AND action = 'proposal.created' AND subject->>'toolUse' = $2 ORDER BY id LIMIT 1`,
    [incidentId, toolUseId],
  );
  return rows[0] ? Number(rows[0].id) : undefined;
}
