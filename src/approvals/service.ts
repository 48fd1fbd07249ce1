import { CodedError, ErrorCode } from '../errors.ts';
import type { Db } from '../store/db.ts';
import { appendAudit } from '../store/records.ts';
import { decide, type RefusalReason, type Verdict } from './machine.ts';
import { isAutomatic, type Policy } from './policy.ts';
import { type ProposalKind, type ProposalState, type ProposalText, proposalHash } from './proposal.ts';

/**
 * The approval gate over the store: proposals made, decided, expired, run. Every step is one
 * transaction with the proposal row locked, and is appended to the audit log in that same
 * transaction; the database's triggers refuse a run without the approvals of its exact hash, so
 * even a bug here cannot run what nobody approved. They also keep a proposal fixed once made (all
 * but its state, which only moves forward) and its time limits on the database's own clock
 * (migrations/0009): the service closes a proposal when either clock says its time is up.
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

export interface RunRecord {
  id: number;
  state: 'running' | 'succeeded' | 'failed';
  startedAt: Date;
  finishedAt: Date | null;
  exitCode: number | null;
  outputBytes: number | null;
  error: string | null;
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

const asDate = (v: Date | string) => (v instanceof Date ? v : new Date(v));

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

/**
 * Time left by the database's clock, in milliseconds: for decisions (the proposal's window from
 * when the database recorded it) and for the run (the same window from the last approval that
 * counts; null before one). The database's triggers refuse a decision or a run past these, so the
 * service closes a proposal when either its own clock or the database's says the time is up:
 * the two can disagree (a fake clock in tests, a skewed host).
 */
async function timeLeftByDatabase(
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

/**
 * A proposal of this exact text for this incident that is still live or already ran: a retried
 * job proposes nothing twice (and, for automatic pulls, pulls nothing twice).
 */
export async function sameProposal(
  db: Db,
  incidentId: number,
  p: ProposalText,
): Promise<Proposal | undefined> {
  const { rows } = await db.executeSql<ProposalRow>(
    `SELECT * FROM proposals WHERE incident_id = $1 AND sha256 = $2
       AND state IN ('pending', 'approved', 'running', 'done') ORDER BY id DESC LIMIT 1`,
    [incidentId, proposalHash(p)],
  );
  return rows[0] ? toProposal(rows[0]) : undefined;
}

export interface NewProposal extends ProposalText {
  incidentId: number;
  why: string;
  expects?: string;
  /** A Slack user id, or `agent` / `nightshift` for the bot's own proposals. */
  proposedBy: string;
  /**
   * The agent's tool_use block that asked for it, kept in the audit entry: a turn cut short
   * after the proposal was made finds it there (proposalOfToolUse).
   */
  toolUseId?: string;
}

/**
 * Records a proposal with the hash of its canonical form. When the policy makes its kind
 * automatic (pulls only), the approval is recorded too, by `policy`, so the run still has one.
 */
export async function createProposal(
  db: Db,
  input: NewProposal,
  policy: Policy,
  now: Date,
): Promise<Proposal> {
  const sha256 = proposalHash(input);
  const expiresAt = new Date(now.getTime() + policy.expiresMinutes * 60_000);
  return db.transaction(async (tx) => {
    const { rows } = await tx.executeSql<ProposalRow>(
      `INSERT INTO proposals (incident_id, kind, target, text, sha256, why, expects, proposed_by, created_at,
         expires_at, approvals_required, self_approval_allowed)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *`,
      [
        input.incidentId,
        input.kind,
        input.target,
        input.text,
        sha256,
        input.why,
        input.expects ?? '',
        input.proposedBy,
        now,
        expiresAt,
        policy.approvalsRequired,
        policy.selfApproval,
      ],
    );
    let proposal = toProposal(rows[0]!);
    await appendAudit(tx, {
      actor: input.proposedBy,
      action: 'proposal.created',
      incidentId: input.incidentId,
      subject: {
        proposal: proposal.id,
        kind: input.kind,
        target: input.target,
        sha256,
        ...(input.toolUseId ? { toolUse: input.toolUseId } : {}),
      },
    });
    if (isAutomatic(policy, input.kind)) {
      for (let i = 0; i < policy.approvalsRequired; i++) {
        await tx.executeSql(
          `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
           VALUES ($1, $2, 'approved', $3, 'policy', $4)`,
          [proposal.id, sha256, i === 0 ? 'policy' : `policy#${i + 1}`, now],
        );
      }
      await tx.executeSql(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [proposal.id]);
      proposal = { ...proposal, state: 'approved' };
      await appendAudit(tx, {
        actor: 'policy',
        action: 'proposal.approved',
        incidentId: input.incidentId,
        subject: { proposal: proposal.id, sha256, via: 'policy' },
      });
    }
    return proposal;
  });
}

/** The proposal the agent's tool_use block made, if it made one (its creation is audited with it). */
export async function proposalOfToolUse(
  db: Db,
  incidentId: number,
  toolUseId: string,
): Promise<Proposal | undefined> {
  const { rows } = await db.executeSql<{ id: string }>(
    `SELECT subject->>'proposal' AS id FROM audit_log
     WHERE incident_id = $1 AND action = 'proposal.created' AND subject->>'toolUse' = $2 ORDER BY id LIMIT 1`,
    [incidentId, toolUseId],
  );
  return rows[0] ? getProposal(db, Number(rows[0].id)) : undefined;
}

export interface DecisionInput {
  proposalId: number;
  decision: 'approved' | 'rejected';
  user: string;
  via: 'button' | 'reaction' | 'cli';
  /** The hash of the text the user saw. */
  sha256: string;
  isApprover: boolean;
  now: Date;
}

export type DecisionOutcome =
  | { kind: 'refused'; reason: RefusalReason | 'unknown'; message: string; proposal?: Proposal }
  | { kind: 'recorded'; proposal: Proposal; verdict: Extract<Verdict, { kind: 'recorded' }> };

/** A button click or a reaction: at most one state change, however many arrive at once. */
export async function decideProposal(db: Db, input: DecisionInput): Promise<DecisionOutcome> {
  return db.transaction(async (tx) => {
    const proposal = await getProposal(tx, input.proposalId, true);
    if (!proposal) return { kind: 'refused', reason: 'unknown', message: 'There is no such proposal.' };
    const approvals = await listApprovals(tx, proposal.id);
    // It expires when the first of the two clocks says so, told on the bot's clock.
    const { toDecide } = await timeLeftByDatabase(tx, proposal.id);
    const expiresAt = new Date(Math.min(proposal.expiresAt.getTime(), input.now.getTime() + toDecide));
    const verdict = decide(
      {
        state: proposal.state,
        sha256: proposal.sha256,
        proposedBy: proposal.proposedBy,
        expiresAt,
        approvalsRequired: proposal.approvalsRequired,
        selfApprovalAllowed: proposal.selfApprovalAllowed,
        approvedBy: approvals.filter((a) => a.decision === 'approved').map((a) => a.decidedBy),
      },
      {
        decision: input.decision,
        user: input.user,
        sha256: input.sha256,
        isApprover: input.isApprover,
        at: input.now,
      },
    );
    if (verdict.kind === 'refused') {
      if (verdict.reason === 'expired') await markExpired(tx, proposal);
      await appendAudit(tx, {
        actor: input.user,
        action: 'proposal.decision_refused',
        incidentId: proposal.incidentId,
        subject: {
          proposal: proposal.id,
          decision: input.decision,
          via: input.via,
          reason: verdict.reason,
          sha256: input.sha256,
        },
      });
      return {
        kind: 'refused',
        reason: verdict.reason,
        message: verdict.message,
        proposal: verdict.reason === 'expired' ? { ...proposal, state: 'expired' } : proposal,
      };
    }
    await tx.executeSql(
      `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at) VALUES ($1, $2, $3, $4, $5, $6)`,
      [proposal.id, proposal.sha256, verdict.decision, input.user, input.via, input.now],
    );
    if (verdict.state !== proposal.state)
      await tx.executeSql('UPDATE proposals SET state = $2 WHERE id = $1', [proposal.id, verdict.state]);
    await appendAudit(tx, {
      actor: input.user,
      action: `proposal.${verdict.decision}`,
      incidentId: proposal.incidentId,
      subject: {
        proposal: proposal.id,
        sha256: proposal.sha256,
        via: input.via,
        approvals: verdict.approvals,
        required: verdict.required,
      },
    });
    return { kind: 'recorded', proposal: { ...proposal, state: verdict.state }, verdict };
  });
}

async function markExpired(tx: Db, proposal: Proposal): Promise<void> {
  await tx.executeSql(`UPDATE proposals SET state = 'expired' WHERE id = $1 AND state = 'pending'`, [
    proposal.id,
  ]);
  await appendAudit(tx, {
    actor: 'nightshift',
    action: 'proposal.expired',
    incidentId: proposal.incidentId,
    subject: { proposal: proposal.id, sha256: proposal.sha256 },
  });
}

/**
 * Marks every pending proposal past its time expired, by the bot's clock or by the database's;
 * returns them (their messages need updating).
 */
export async function expireProposals(db: Db, now: Date): Promise<Proposal[]> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.executeSql<ProposalRow>(
      `SELECT * FROM proposals
       WHERE state = 'pending'
         AND (expires_at <= $1 OR recorded_at + (expires_at - created_at) <= clock_timestamp())
       ORDER BY id FOR UPDATE SKIP LOCKED`,
      [now],
    );
    const expired = rows.map(toProposal);
    for (const p of expired) await markExpired(tx, p);
    return expired.map((p) => ({ ...p, state: 'expired' as const }));
  });
}

/**
 * Claims the one run of an approved proposal, for the text about to execute: the runner passes
 * what it will run, and its hash must be the approved one. Returns undefined when the proposal
 * already ran or is running (a retried job, a second worker): never two runs.
 */
export async function startRun(
  db: Db,
  proposalId: number,
  about: ProposalText,
  now: Date,
): Promise<RunRecord | undefined> {
  return db.transaction(async (tx) => {
    const proposal = await getProposal(tx, proposalId, true);
    if (!proposal) throw new CodedError(ErrorCode.NotFound, `there is no proposal ${proposalId}`);
    const sha256 = proposalHash(about);
    if (sha256 !== proposal.sha256)
      throw new CodedError(
        ErrorCode.NotApproved,
        `proposal ${proposalId}: the text about to run (sha256 ${sha256.slice(0, 12)}) is not the approved one (${proposal.sha256.slice(0, 12)}); nothing ran`,
      );
    if (proposal.state !== 'approved') {
      if (['running', 'done', 'failed'].includes(proposal.state)) return undefined;
      throw new CodedError(
        ErrorCode.NotApproved,
        `proposal ${proposalId} is ${proposal.state}, not approved; nothing ran`,
      );
    }
    // An approval is for now, not for whenever a queue gets to it: a run that has not started
    // within the proposal's own window after its approval is expired instead.
    const approvedAt = (await listApprovals(tx, proposalId))
      .filter((a) => a.decision === 'approved')
      .reduce((latest, a) => Math.max(latest, a.decidedAt.getTime()), 0);
    const window = proposal.expiresAt.getTime() - proposal.createdAt.getTime();
    const { toRun } = await timeLeftByDatabase(tx, proposalId);
    if (now.getTime() > approvedAt + window || (toRun !== null && toRun < 0)) {
      await tx.executeSql(`UPDATE proposals SET state = 'expired' WHERE id = $1`, [proposalId]);
      await appendAudit(tx, {
        actor: 'nightshift',
        action: 'proposal.expired',
        incidentId: proposal.incidentId,
        subject: { proposal: proposalId, sha256, reason: 'approved, but not started in time' },
      });
      return undefined;
    }
    // The trigger on runs checks the approvals of this hash again, in the database.
    const { rows } = await tx.executeSql<{ id: string; started_at: Date | string }>(
      'INSERT INTO runs (proposal_id, sha256, heartbeat_at) VALUES ($1, $2, $3) RETURNING id, started_at',
      [proposalId, sha256, now],
    );
    await tx.executeSql(`UPDATE proposals SET state = 'running' WHERE id = $1`, [proposalId]);
    const run = rows[0]!;
    await appendAudit(tx, {
      actor: 'nightshift',
      action: 'run.started',
      incidentId: proposal.incidentId,
      subject: {
        proposal: proposalId,
        run: Number(run.id),
        sha256,
        kind: proposal.kind,
        target: proposal.target,
      },
    });
    return {
      id: Number(run.id),
      state: 'running',
      startedAt: asDate(run.started_at),
      finishedAt: null,
      exitCode: null,
      outputBytes: null,
      error: null,
    };
  });
}

export interface RunEnd {
  ok: boolean;
  exitCode?: number | null;
  outputBytes?: number;
  result?: object;
  error?: string;
}

/**
 * Records the end of a running run, and its proposal's (done or failed), with evidence it was
 * still transferring marked failed. Returns false, changing nothing, when the run had already
 * ended: the sweeper failed it because its heartbeat stopped (failStaleRuns).
 */
export async function finishRun(db: Db, proposal: Proposal, runId: number, end: RunEnd): Promise<boolean> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.executeSql<{ ms: number | string }>(
      `UPDATE runs SET state = $2, finished_at = now(), exit_code = $3, output_bytes = $4, result = $5, error = $6
       WHERE id = $1 AND state = 'running'
       RETURNING (extract(epoch FROM finished_at - started_at) * 1000)::bigint AS ms`,
      [
        runId,
        end.ok ? 'succeeded' : 'failed',
        end.exitCode ?? null,
        end.outputBytes ?? null,
        JSON.stringify(end.result ?? {}),
        end.error ?? null,
      ],
    );
    if (rows.length === 0) return false;
    await failTransfers(tx, runId, end.error ?? 'the run ended before this file was in');
    await tx.executeSql('UPDATE proposals SET state = $2 WHERE id = $1', [
      proposal.id,
      end.ok ? 'done' : 'failed',
    ]);
    await appendAudit(tx, {
      actor: 'nightshift',
      action: 'run.finished',
      incidentId: proposal.incidentId,
      subject: {
        proposal: proposal.id,
        run: runId,
        ok: end.ok,
        exitCode: end.exitCode ?? null,
        outputBytes: end.outputBytes ?? null,
        durationMs: Number(rows[0]?.ms ?? 0),
        ...(end.error ? { error: end.error } : {}),
      },
    });
    return true;
  });
}

/** Evidence a run was still transferring when it ended never completes: it is failed, with why. */
async function failTransfers(tx: Db, runId: number, error: string): Promise<void> {
  await tx.executeSql(
    `UPDATE evidence_artifacts SET state = 'failed', error = $2 WHERE run_id = $1 AND state = 'transferring'`,
    [runId, error.slice(0, 1000)],
  );
}

/**
 * How often a worker writes its run's heartbeat, and how old the heartbeat may get before the
 * sweeper takes the worker for dead and fails the run, in milliseconds. Not read from the
 * environment (tests pass their own).
 */
export const RUN_HEARTBEAT = { everyMs: 15_000, staleAfterMs: 120_000 };

/** The worker of a running run is alive at `at` (its own clock, as the sweeper's is). */
export async function beatRun(db: Db, runId: number, at: Date): Promise<void> {
  await db.executeSql(
    `UPDATE runs SET heartbeat_at = greatest(heartbeat_at, $2) WHERE id = $1 AND state = 'running'`,
    [runId, at],
  );
}

/** A run the sweeper failed, for the thread and whoever waits for the result. */
export interface AbandonedRun {
  runId: number;
  proposal: Proposal;
  /** Why, in words: what the run's record and its reply say. */
  error: string;
}

/**
 * Fails every run whose heartbeat is older than `staleAfterMs` at `now`: its worker died (the
 * process, its host) or lost the database for that long, and nothing else would ever finish it.
 * Each run, its proposal and its transfers are failed in one transaction with the audit entry;
 * rows are taken with SKIP LOCKED, so sweepers in several processes fail a run once.
 */
export async function failStaleRuns(db: Db, now: Date, staleAfterMs: number): Promise<AbandonedRun[]> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.executeSql<{ id: string; proposal_id: string; heartbeat_at: Date | string }>(
      `SELECT id, proposal_id, heartbeat_at FROM runs WHERE state = 'running' AND heartbeat_at < $1
       ORDER BY id FOR UPDATE SKIP LOCKED`,
      [new Date(now.getTime() - staleAfterMs)],
    );
    const failed: AbandonedRun[] = [];
    for (const row of rows) {
      const proposal = await getProposal(tx, Number(row.proposal_id), true);
      if (!proposal) continue;
      const runId = Number(row.id);
      const seen = asDate(row.heartbeat_at);
      const error = `its worker stopped answering: no heartbeat since ${seen.toISOString()} (over ${Math.round(staleAfterMs / 1000)} s); what it did before that is not known`;
      await tx.executeSql(
        `UPDATE runs SET state = 'failed', finished_at = now(), result = $2, error = $3 WHERE id = $1`,
        [runId, JSON.stringify({ code: ErrorCode.RunAbandoned, heartbeatAt: seen.toISOString() }), error],
      );
      await failTransfers(tx, runId, `the run was failed: ${error}`);
      await tx.executeSql(`UPDATE proposals SET state = 'failed' WHERE id = $1`, [proposal.id]);
      await appendAudit(tx, {
        actor: 'nightshift',
        action: 'run.finished',
        incidentId: proposal.incidentId,
        subject: { proposal: proposal.id, run: runId, ok: false, error },
      });
      failed.push({ runId, proposal: { ...proposal, state: 'failed' }, error });
    }
    return failed;
  });
}
