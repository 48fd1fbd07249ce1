import assert from 'node:assert/strict';
import { type Policy, PolicySchema } from '../../src/approvals/policy.ts';
import {
  createProposal,
  decideProposal,
  type NewProposal,
  type Proposal,
} from '../../src/approvals/service.ts';
import { queueProposalMessage } from '../../src/slack/proposal-messages.ts';
import type { Db } from '../../src/store/db.ts';

/** The approver of the tests that decide proposals, and the policy that names them alone. */
export const APPROVER = 'U0APPROVER';
export const approverPolicy: Policy = PolicySchema.parse({ approvers: { users: [APPROVER] } });

/** An evidence script the agent proposes for `incidentId`, pending, under approverPolicy. */
export function proposeScript(
  db: Db,
  incidentId: number,
  now: Date,
  text = 'grep -c icy- strings.txt',
): Promise<Proposal> {
  return createProposal(
    db,
    { incidentId, kind: 'script', target: 'evidence', text, why: 'test', proposedBy: 'agent' },
    approverPolicy,
    now,
  );
}

/** What an Approve or Reject button carries: the proposal and the hash of the text it showed. */
export const buttonValue = (proposal: Pick<Proposal, 'id' | 'sha256'>) => `${proposal.id}:${proposal.sha256}`;

/**
 * APPROVER's decision on `proposal` recorded as their click (or reaction) records it, at `now`
 * (the time the test's proposals live in, where their expiry matters); fails the test otherwise.
 */
export async function approve(
  db: Db,
  proposal: Pick<Proposal, 'id' | 'sha256'>,
  via: 'button' | 'reaction' = 'button',
  now: Date = new Date(),
): Promise<void> {
  const decision = await decideProposal(db, {
    proposalId: proposal.id,
    decision: 'approved',
    user: APPROVER,
    via,
    sha256: proposal.sha256,
    isApprover: true,
    now,
  });
  assert.equal(decision.kind, 'recorded');
}

/**
 * A proposal made under approverPolicy, its message queued in `channel`, and approved by
 * APPROVER's button: what the runner is handed. With `unlessApproved`, a proposal the policy
 * approved by itself is not approved again.
 */
export async function approvedProposal(
  db: Db,
  input: NewProposal,
  channel: string,
  options: { unlessApproved?: boolean } = {},
): Promise<Proposal> {
  const proposal = await createProposal(db, input, approverPolicy, new Date());
  await queueProposalMessage(db, proposal, channel, new Date());
  if (!options.unlessApproved || proposal.state === 'pending') await approve(db, proposal);
  return proposal;
}
