import { decideProposal, type Proposal } from '../approvals/service.ts';
import type { ListenerDeps } from './deps.ts';

/**
 * What a button click and a reaction share: check the approver, record the decision (one
 * transaction, the proposal locked), edit the message in place, start the run once the proposal
 * is approved, and tell whoever waits for it (the agent) once it is rejected or found expired. Returns the words for the person when nothing changed (they get them
 * ephemerally), undefined when something did.
 */
export async function applyDecision(
  deps: ListenerDeps,
  input: {
    proposalId: number;
    sha256: string;
    decision: 'approved' | 'rejected';
    user: string;
    via: 'button' | 'reaction';
  },
): Promise<string | undefined> {
  const { approvals } = deps;
  const outcome = await decideProposal(deps.db, {
    ...input,
    isApprover: await approvals.isApprover(input.user),
    now: deps.now(),
  });
  if (outcome.kind === 'refused') {
    if (outcome.reason === 'expired') {
      if (outcome.proposal) await approvals.onClosed(outcome.proposal);
      await approvals.refresh(input.proposalId);
    }
    deps.log.info(
      { proposal: input.proposalId, user: input.user, via: input.via, reason: outcome.reason },
      'proposal decision refused',
    );
    return outcome.message;
  }
  // The run is queued before the message is edited: what the message shows never holds up a run.
  if (outcome.proposal.state === 'approved') await approvals.onApproved(outcome.proposal);
  if (outcome.proposal.state === 'rejected') await approvals.onClosed(outcome.proposal);
  await approvals.refresh(input.proposalId);
  deps.kick();
  return undefined;
}

export interface ApprovalListenerDeps {
  isApprover(user: string): Promise<boolean>;
  /** Re-renders the proposal's message in place. */
  refresh(proposalId: number): Promise<void>;
  /** Queues the one run of an approved proposal. */
  onApproved(proposal: Proposal): Promise<void>;
  /**
   * A proposal closed without running (rejected, or found expired): wakes the agent when it
   * made it. Called once per state change; a retried event changes nothing and calls nothing.
   */
  onClosed(proposal: Proposal): Promise<void>;
}
