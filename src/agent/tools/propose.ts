import { riskNotes } from '../../approvals/risk.ts';
import { createProposal, type NewProposal, type Proposal } from '../../approvals/service.ts';
import { queueProposalMessage } from '../../slack/proposal-messages.ts';
import type { ToolContext, ToolOutcome } from './tool.ts';

/**
 * What both acting tools do once their input passed: record the proposal (hash of its exact
 * text), queue its message with the Approve/Reject buttons, and tell the model it waits for a
 * human. Nothing runs here; the run only comes from an approver's decision.
 */
export async function recordProposal(
  ctx: ToolContext,
  input: Omit<NewProposal, 'incidentId' | 'proposedBy'>,
): Promise<ToolOutcome> {
  const now = ctx.now();
  const proposal = await createProposal(
    ctx.db,
    {
      ...input,
      incidentId: ctx.incidentId,
      proposedBy: 'agent',
      ...(ctx.toolUseId ? { toolUseId: ctx.toolUseId } : {}),
    },
    ctx.policy,
    now,
  );
  await queueProposalMessage(ctx.db, proposal, ctx.channel, now);
  ctx.kick?.();
  return recordedOutcome(proposal);
}

/**
 * What the model is told of a proposal it made: when the tool ran, and again when the bot died
 * before that answer was stored (the proposal exists; asking again would make a second one).
 */
export function recordedOutcome(proposal: Proposal): ToolOutcome {
  const risks = riskNotes(proposal);
  return {
    source: `proposal ${proposal.id}`,
    text: [
      `Proposal #${proposal.id} is recorded (sha256 ${proposal.sha256}) and posted to the thread; it is ${proposal.state}.`,
      'Nothing has run. It runs only if an approver approves this exact text before it expires',
      `(${proposal.expiresAt.toISOString()}). Your turn ends here; its result comes in a later turn.`,
      ...(risks.length > 0 ? [`Risk notes shown to the reviewer: ${risks.join('; ')}.`] : []),
    ].join('\n'),
    proposal,
  };
}
