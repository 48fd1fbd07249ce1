import { createHash } from 'node:crypto';

/**
 * A proposal is what the agent (or the collection) wants to run, named by the sha256 of its
 * canonical form. An approval is of that hash: the text shown on the phone is the text that
 * runs, and any edit, even of one character or of where it runs, is a new proposal with a new
 * hash that needs a new approval.
 */

/** `free`: delete cores already pulled whole, to free the host's disk (src/collect/free-plan.ts). */
export type ProposalKind = 'script' | 'sql' | 'pull' | 'free';

export interface ProposalText {
  kind: ProposalKind;
  /** Where it runs: `evidence` (the local workspace), a host name, or a database name. */
  target: string;
  /** The exact text that runs. */
  text: string;
}

export type ProposalState = 'pending' | 'approved' | 'rejected' | 'expired' | 'running' | 'done' | 'failed';

/** Length-prefixed fields, so no choice of text can make two different proposals collide. */
export function canonicalForm(p: ProposalText): string {
  return [p.kind, p.target, p.text].map((field) => `${Buffer.byteLength(field, 'utf8')}:${field}`).join('\n');
}

export function proposalHash(p: ProposalText): string {
  return createHash('sha256').update(canonicalForm(p), 'utf8').digest('hex');
}
