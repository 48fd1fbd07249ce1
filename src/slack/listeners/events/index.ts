import type { App } from '@slack/bolt';
import type { ListenerDeps } from '../../deps.ts';
import { appMentionCallback } from './app-mention.ts';
import { reactionAddedCallback } from './reaction-added.ts';

/** Bot events; each must be listed under settings.event_subscriptions.bot_events in manifest.yml. */
export function register(app: App, deps: ListenerDeps): void {
  app.event('app_mention', appMentionCallback(deps));
  app.event('reaction_added', reactionAddedCallback(deps));
}
