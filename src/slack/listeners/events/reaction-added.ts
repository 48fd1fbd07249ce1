import type { AllMiddlewareArgs, SlackEventMiddlewareArgs } from '@slack/bolt';
import { getProposal } from '../../../approvals/service.ts';
import { incidentByThread, setCommander } from '../../../incidents/incidents.ts';
import { APPROVE_REACTIONS, REJECT_REACTIONS } from '../../blocks/proposal.ts';
import type { ListenerDeps } from '../../deps.ts';
import { applyDecision } from '../../proposal-decisions.ts';
import { proposalByMessage } from '../../proposal-messages.ts';
import { firstDelivery } from './first-delivery.ts';

/** Reactions that mean "I take this": on an incident's root message they make the reactor commander. */
export const CLAIM_REACTIONS = new Set(['raising_hand', 'hand', 'man-raising-hand', 'woman-raising-hand']);

export function reactionAddedCallback(deps: ListenerDeps) {
  return async ({
    event,
    body,
    client,
    logger,
  }: SlackEventMiddlewareArgs<'reaction_added'> & AllMiddlewareArgs) => {
    if (event.item.type !== 'message') return;
    const reaction = event.reaction.split('::')[0]!;
    const decision = APPROVE_REACTIONS.has(reaction)
      ? 'approved'
      : REJECT_REACTIONS.has(reaction)
        ? 'rejected'
        : undefined;
    if (!decision && !CLAIM_REACTIONS.has(reaction)) return;
    if (!(await firstDelivery(deps.db, (body as { event_id?: string }).event_id, 'reaction_added'))) return;
    try {
      if (decision) {
        await decideByReaction(deps, client, event.item.channel, event.item.ts, event.user, decision);
        return;
      }
      const incident = await incidentByThread(deps.db, event.item.channel, event.item.ts);
      if (!incident || incident.status === 'resolved') return;
      await setCommander(deps.db, incident.id, event.user);
      await deps.refresh(incident.id);
    } catch (error) {
      logger.error(error);
    }
  };
}

/**
 * ✅ or ❌ on a proposal's message decides it as the buttons do. The message shows one proposal's
 * text, which never changes (an edit is a new proposal), so the reaction is to that text's hash.
 */
async function decideByReaction(
  deps: ListenerDeps,
  client: AllMiddlewareArgs['client'],
  channel: string,
  ts: string,
  user: string,
  decision: 'approved' | 'rejected',
): Promise<void> {
  const message = await proposalByMessage(deps.db, channel, ts);
  if (message === undefined) return;
  const { proposalId, threadTs } = message;
  const proposal = await getProposal(deps.db, proposalId);
  if (!proposal) return;
  const refusal = await applyDecision(deps, {
    proposalId,
    sha256: proposal.sha256,
    decision,
    user,
    via: 'reaction',
  });
  if (refusal) await client.chat.postEphemeral({ channel, user, text: refusal, thread_ts: threadTs });
}
