import { getIncident, setCommander } from '../../../incidents/incidents.ts';
import { parseIncidentValue } from '../../blocks/incident.ts';
import { md } from '../../blocks/mrkdwn.ts';
import type { ListenerDeps } from '../../deps.ts';
import { runIncidentCommand } from '../../incident-actions.ts';
import { buttonListener } from './button.ts';

/**
 * The buttons of an incident's root message: Take command, Mitigated, Resolve. They do what the
 * commands (and the 🙋 reaction) do, through the same service: a state change posts its reply in
 * the thread and refreshes the root. Acked first; the clicker alone is told the outcome, or why
 * nothing changed (an incident already resolved, a change its state does not allow).
 */
export function incidentButtonCallback(deps: ListenerDeps, kind: 'command' | 'mitigated' | 'resolved') {
  return buttonListener(
    'Something went wrong; nothing changed. It is in the bot log.',
    async ({ body, action, logger }, say) => {
      const id = parseIncidentValue(action.value);
      if (id === undefined)
        return void (await say('That button does not name an incident; nothing changed.'));
      if (kind === 'command') {
        const incident = await getIncident(deps.db, id);
        if (!incident) return void (await say(md`There is no incident #${id}.`.text));
        if (incident.status === 'resolved')
          return void (await say(md`#${id} is resolved; it has no commander to take.`.text));
        await setCommander(deps.db, id, body.user.id);
        await deps.refresh(id).catch((error: unknown) => logger.warn(error));
        return void (await say(md`You are the commander of #${id}.`.text));
      }
      const answer = await runIncidentCommand(
        deps,
        { kind: 'set', status: kind, incident: id },
        {
          user: body.user.id,
          channel: body.channel?.id ?? deps.channel,
          requestId: `button:${(body as { trigger_id?: string }).trigger_id ?? Date.now()}`,
        },
      );
      await say(answer);
    },
  );
}
