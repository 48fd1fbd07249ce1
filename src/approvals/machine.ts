import type { ProposalState } from './proposal.ts';

/**
 * The approval state machine, pure: what a click or a reaction does to a proposal. The service
 * applies its verdict inside one transaction with the proposal row locked, and the database's
 * triggers check the same rules again, so a bug here cannot make anything run unapproved.
 *
 *   pending ──approve (enough distinct approvers)──▶ approved ──run──▶ running ──▶ done | failed
 *      │ └─reject─▶ rejected ◀─reject (before the run starts)─┘ │
 *      └──expiry──▶ expired ◀──not started in time─────────────┘
 */

export interface ProposalFacts {
  state: ProposalState;
  sha256: string;
  proposedBy: string;
  expiresAt: Date;
  approvalsRequired: number;
  selfApprovalAllowed: boolean;
  /** Approvals already recorded (of this hash). */
  approvedBy: readonly string[];
}

export interface Decision {
  decision: 'approved' | 'rejected';
  user: string;
  /** The hash of the text the user saw (the button carries it; a reaction is on that message). */
  sha256: string;
  isApprover: boolean;
  at: Date;
}

export type RefusalReason =
  | 'not_approver'
  | 'stale_text'
  | 'self_approval'
  | 'expired'
  | 'closed'
  | 'already_approved_by_you';

export type Verdict =
  | { kind: 'refused'; reason: RefusalReason; message: string }
  | {
      kind: 'recorded';
      decision: 'approved' | 'rejected';
      /** The proposal's state after this decision. */
      state: 'pending' | 'approved' | 'rejected';
      approvals: number;
      required: number;
    };

const refuse = (reason: RefusalReason, message: string): Verdict => ({ kind: 'refused', reason, message });

export function decide(p: ProposalFacts, d: Decision): Verdict {
  if (!d.isApprover) return refuse('not_approver', 'You are not an approver, so nothing changed.');
  if (d.sha256 !== p.sha256)
    return refuse('stale_text', 'That is not the text of this proposal any more; nothing changed.');
  if (p.state === 'pending' && p.expiresAt.getTime() <= d.at.getTime())
    return refuse('expired', 'This proposal expired; ask for it again.');
  // Changing one's mind stays possible until the run starts: an approved proposal can be rejected.
  if (p.state !== 'pending' && !(p.state === 'approved' && d.decision === 'rejected'))
    return refuse('closed', `This proposal is already ${p.state}.`);
  if (d.decision === 'rejected')
    return {
      kind: 'recorded',
      decision: 'rejected',
      state: 'rejected',
      approvals: p.approvedBy.length,
      required: p.approvalsRequired,
    };
  if (!p.selfApprovalAllowed && d.user === p.proposedBy)
    return refuse('self_approval', 'You asked for this, and the policy needs someone else to approve it.');
  if (p.approvedBy.includes(d.user))
    return refuse(
      'already_approved_by_you',
      `You already approved this; it needs ${p.approvalsRequired - p.approvedBy.length} more approver(s).`,
    );
  const approvals = p.approvedBy.length + 1;
  return {
    kind: 'recorded',
    decision: 'approved',
    state: approvals >= p.approvalsRequired ? 'approved' : 'pending',
    approvals,
    required: p.approvalsRequired,
  };
}

/** Whether a pending proposal has run out of time. */
export function isExpired(p: Pick<ProposalFacts, 'state' | 'expiresAt'>, now: Date): boolean {
  return p.state === 'pending' && p.expiresAt.getTime() <= now.getTime();
}
