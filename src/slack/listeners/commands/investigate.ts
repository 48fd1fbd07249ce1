import type { AllMiddlewareArgs, SlackCommandMiddlewareArgs } from '@slack/bolt';
import { parseIncidentCommand } from '../../commands.ts';
import type { ListenerDeps } from '../../deps.ts';
import { runIncidentCommand } from '../../incident-actions.ts';

/**
 * `/investigate`: acked at once (Slack allows 3 seconds), answered to the asker only; what the
 * whole channel should see goes to the incident thread. Slack sends no thread with a slash
 * command, so `#id` (or the only open incident) says which incident is meant.
 */
export function investigateCallback(deps: ListenerDeps) {
  return async ({ command, ack, respond, logger }: SlackCommandMiddlewareArgs & AllMiddlewareArgs) => {
    await ack();
    try {
      const text = await runIncidentCommand(deps, parseIncidentCommand(command.text), {
        user: command.user_id,
        channel: command.channel_id,
        requestId: command.trigger_id,
      });
      await respond({ response_type: 'ephemeral', text });
    } catch (error) {
      logger.error(error);
      await respond({ response_type: 'ephemeral', text: 'Something went wrong; it is in the bot log.' });
    }
  };
}
