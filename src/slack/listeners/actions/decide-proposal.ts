import { parseProposalValue } from '../../blocks/proposal.ts';
import type { ListenerDeps } from '../../deps.ts';
import { applyDecision } from '../../proposal-decisions.ts';
import { buttonListener } from './button.ts';

/**
 * The Approve and Reject buttons of a proposal. The button's value carries the proposal id and
 * the hash of the text it was shown with, so a click approves exactly that text. Acked first;
 * someone who may not decide gets an ephemeral answer and nothing changes.
 */
export function decideProposalCallback(deps: ListenerDeps, decision: 'approved' | 'rejected') {
  return buttonListener(
    'Something went wrong; nothing ran. It is in the bot log.',
    async ({ body, action }, say) => {
      const target = parseProposalValue(action.value);
      const refusal = target
        ? await applyDecision(deps, {
            proposalId: target.id,
            sha256: target.sha256,
            decision,
            user: body.user.id,
            via: 'button',
          })
        : 'That button does not name a proposal; nothing changed.';
      if (refusal) await say(refusal);
    },
  );
}
