import type { App, BlockButtonAction } from '@slack/bolt';
import { APPROVE_ACTION, REJECT_ACTION } from '../../blocks/proposal.ts';
import type { ListenerDeps } from '../../deps.ts';
import { decideProposalCallback } from './decide-proposal.ts';

/** Interactive actions (buttons); manifest.yml must enable interactivity for them. */
export function register(app: App, deps: ListenerDeps): void {
  app.action<BlockButtonAction>(APPROVE_ACTION, decideProposalCallback(deps, 'approved'));
  app.action<BlockButtonAction>(REJECT_ACTION, decideProposalCallback(deps, 'rejected'));
}
