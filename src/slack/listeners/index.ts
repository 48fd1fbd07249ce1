import type { App } from '@slack/bolt';
import type { ListenerDeps } from '../deps.ts';
import * as actions from './actions/index.ts';
import * as commands from './commands/index.ts';
import * as events from './events/index.ts';

/** Everything the app listens to; manifest.yml must declare exactly these (a test checks). */
export const LISTENED = { commands: commands.COMMANDS, events: events.EVENTS, actions: actions.ACTIONS };

export function registerListeners(app: App, deps: ListenerDeps): void {
  actions.register(app, deps);
  commands.register(app, deps);
  events.register(app, deps);
}
