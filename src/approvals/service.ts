import { CodedError, ErrorCode } from '../errors.ts';
import type { Db } from '../store/db.ts';
import { failRunTransfers } from '../store/evidence-artifacts.ts';
import {
  getProposal,
  insertApproval,
  insertProposal,
  listApprovals,
  liveProposalByHash,
  lockExpiredPending,
  type Proposal,
  proposalIdOfToolUse,
  setProposalState,
  timeLeftByDatabase,
} from '../store/proposals.ts';
import { appendAudit } from '../store/records.ts';
import { endRunningRun, failRun, insertRun, lockStaleRuns, type RunRecord } from '../store/runs.ts';
import { decide, type RefusalReason, type Verdict } from './machine.ts';
import { isAutomatic, type Policy } from './policy.ts';
import { type ProposalText, proposalHash } from './proposal.ts';

/**
 * The approval gate over the store: proposals made, decided, expired, run. Every step is one
 * transaction with the proposal row locked, and is appended to the audit log in that same
 * transaction; the database's triggers refuse a run without the approvals of its exact hash, so
 * even a bug here cannot run what nobody approved. They also keep a proposal fixed once made (all
 * but its state, which only moves forward) and its time limits on the database's own clock
 * (migrations/0009): the service closes a proposal when either clock says its time is up (the
 * two can disagree: a fake clock in tests, a skewed host). The statements are in
 * store/proposals.ts and store/runs.ts.
 */

export type { ApprovalRecord, Proposal } from '../store/proposals.ts';
export { getProposal, listApprovals } from '../store/proposals.ts';
export type { RunRecord } from '../store/runs.ts';
export { beatRun, getRun } from '../store/runs.ts';

/**
 * A proposal of this exact text for this incident that is still live or already ran: a retried
 * job proposes nothing twice (and, for automatic pulls, pulls nothing twice).
 */
export async function sameProposal(
  db: Db,
  incidentId: number,
  p: ProposalText,
): Promise<Proposal | undefined> {
  return liveProposalByHash(db, incidentId, proposalHash(p));
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
    let proposal = await insertProposal(tx, {
      incidentId: input.incidentId,
      kind: input.kind,
      target: input.target,
      text: input.text,
      sha256,
      why: input.why,
      expects: input.expects ?? '',
      proposedBy: input.proposedBy,
      createdAt: now,
      expiresAt,
      approvalsRequired: policy.approvalsRequired,
      selfApprovalAllowed: policy.selfApproval,
    });
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
        await insertApproval(tx, {
          proposalId: proposal.id,
          sha256,
          decision: 'approved',
          decidedBy: i === 0 ? 'policy' : `policy#${i + 1}`,
          via: 'policy',
          decidedAt: now,
        });
      }
      await setProposalState(tx, proposal.id, 'approved');
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
  const id = await proposalIdOfToolUse(db, incidentId, toolUseId);
  return id === undefined ? undefined : getProposal(db, id);
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
    await insertApproval(tx, {
      proposalId: proposal.id,
      sha256: proposal.sha256,
      decision: verdict.decision,
      decidedBy: input.user,
      via: input.via,
      decidedAt: input.now,
    });
    if (verdict.state !== proposal.state) await setProposalState(tx, proposal.id, verdict.state);
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
  await setProposalState(tx, proposal.id, 'expired', 'pending');
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
    const expired = await lockExpiredPending(tx, now);
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
      await setProposalState(tx, proposalId, 'expired');
      await appendAudit(tx, {
        actor: 'nightshift',
        action: 'proposal.expired',
        incidentId: proposal.incidentId,
        subject: { proposal: proposalId, sha256, reason: 'approved, but not started in time' },
      });
      return undefined;
    }
    // The trigger on runs checks the approvals of this hash again, in the database.
    const run = await insertRun(tx, proposalId, sha256, now);
    await setProposalState(tx, proposalId, 'running');
    await appendAudit(tx, {
      actor: 'nightshift',
      action: 'run.started',
      incidentId: proposal.incidentId,
      subject: {
        proposal: proposalId,
        run: run.id,
        sha256,
        kind: proposal.kind,
        target: proposal.target,
      },
    });
    return run;
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
    const durationMs = await endRunningRun(tx, runId, {
      ok: end.ok,
      exitCode: end.exitCode ?? null,
      outputBytes: end.outputBytes ?? null,
      result: end.result ?? {},
      error: end.error ?? null,
    });
    if (durationMs === undefined) return false;
    await failRunTransfers(tx, runId, end.error ?? 'the run ended before this file was in');
    await setProposalState(tx, proposal.id, end.ok ? 'done' : 'failed');
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
        durationMs,
        ...(end.error ? { error: end.error } : {}),
      },
    });
    return true;
  });
}

/**
 * How often a worker writes its run's heartbeat, and how old the heartbeat may get before the
 * sweeper takes the worker for dead and fails the run, in milliseconds. Not read from the
 * environment (tests pass their own).
 */
export const RUN_HEARTBEAT = { everyMs: 15_000, staleAfterMs: 120_000 };

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
    const stale = await lockStaleRuns(tx, new Date(now.getTime() - staleAfterMs));
    const failed: AbandonedRun[] = [];
    for (const { runId, proposalId, heartbeatAt: seen } of stale) {
      const proposal = await getProposal(tx, proposalId, true);
      if (!proposal) continue;
      const error = `its worker stopped answering: no heartbeat since ${seen.toISOString()} (over ${Math.round(staleAfterMs / 1000)} s); what it did before that is not known`;
      await failRun(tx, runId, { code: ErrorCode.RunAbandoned, heartbeatAt: seen.toISOString() }, error);
      await failRunTransfers(tx, runId, `the run was failed: ${error}`);
      await setProposalState(tx, proposal.id, 'failed');
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
