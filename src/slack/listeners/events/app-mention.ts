import type { AllMiddlewareArgs, SlackEventMiddlewareArgs } from '@slack/bolt';
import { parseIncidentCommand } from '../../commands.ts';
import type { ListenerDeps } from '../../deps.ts';
import { runIncidentCommand } from '../../incident-actions.ts';
import { firstDelivery } from './first-delivery.ts';

/** `@nightshift status` (or any /investigate verb) in an incident thread acts on that incident. */
export function appMentionCallback(deps: ListenerDeps) {
  return async ({
    event,
    body,
    client,
    logger,
  }: SlackEventMiddlewareArgs<'app_mention'> & AllMiddlewareArgs) => {
    if (!(await firstDelivery(deps.db, (body as { event_id?: string }).event_id, 'app_mention'))) return;
    const text = event.text.replace(/<@[A-Z0-9]+>/g, '').trim();
    const threadTs = event.thread_ts ?? event.ts;
    try {
      const answer = await runIncidentCommand(deps, parseIncidentCommand(text), {
        user: event.user ?? 'unknown',
        channel: event.channel,
        thread: { channel: event.channel, ts: threadTs },
        requestId: event.ts,
      });
      // The answer quotes titles and hosts (escaped mrkdwn): no unfurled preview, no @channel ping.
      await client.chat.postMessage({
        channel: event.channel,
        thread_ts: threadTs,
        text: answer,
        unfurl_links: false,
        unfurl_media: false,
        link_names: false,
      });
    } catch (error) {
      logger.error(error);
    }
  };
}
