import type { AllMiddlewareArgs, SlackEventMiddlewareArgs } from '@slack/bolt';
import { incidentByThread, setCommander } from '../../../incidents/incidents.ts';
import type { ListenerDeps } from '../../deps.ts';
import { firstDelivery } from './first-delivery.ts';

/** Reactions that mean "I take this": on an incident's root message they make the reactor commander. */
export const CLAIM_REACTIONS = new Set(['raising_hand', 'hand', 'man-raising-hand', 'woman-raising-hand']);

export function reactionAddedCallback(deps: ListenerDeps) {
  return async ({ event, body, logger }: SlackEventMiddlewareArgs<'reaction_added'> & AllMiddlewareArgs) => {
    if (event.item.type !== 'message' || !CLAIM_REACTIONS.has(event.reaction.split('::')[0]!)) return;
    if (!(await firstDelivery(deps.db, (body as { event_id?: string }).event_id, 'reaction_added'))) return;
    try {
      const incident = await incidentByThread(deps.db, event.item.channel, event.item.ts);
      if (!incident || incident.status === 'resolved') return;
      await setCommander(deps.db, incident.id, event.user);
      await deps.refresh(incident.id);
    } catch (error) {
      logger.error(error);
    }
  };
}
