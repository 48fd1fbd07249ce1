import { type Policy, PolicySchema } from '../../src/approvals/policy.ts';
import { createProposal, type Proposal } from '../../src/approvals/service.ts';
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
