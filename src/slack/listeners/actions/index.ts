import type { App, BlockButtonAction } from '@slack/bolt';
import { MITIGATED_ACTION, RESOLVE_ACTION, TAKE_COMMAND_ACTION } from '../../blocks/incident.ts';
import { APPROVE_ACTION, REJECT_ACTION } from '../../blocks/proposal.ts';
import type { ListenerDeps } from '../../deps.ts';
import { decideProposalCallback } from './decide-proposal.ts';
import { incidentButtonCallback } from './incident-button.ts';

/** Interactive actions (buttons); manifest.yml must enable interactivity for them. */
export function register(app: App, deps: ListenerDeps): void {
  app.action<BlockButtonAction>(APPROVE_ACTION, decideProposalCallback(deps, 'approved'));
  app.action<BlockButtonAction>(REJECT_ACTION, decideProposalCallback(deps, 'rejected'));
  app.action<BlockButtonAction>(TAKE_COMMAND_ACTION, incidentButtonCallback(deps, 'command'));
  app.action<BlockButtonAction>(MITIGATED_ACTION, incidentButtonCallback(deps, 'mitigated'));
  app.action<BlockButtonAction>(RESOLVE_ACTION, incidentButtonCallback(deps, 'resolved'));
}
