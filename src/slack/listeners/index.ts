import type { App } from '@slack/bolt';
import type { ListenerDeps } from '../deps.ts';
import * as actions from './actions/index.ts';
import * as commands from './commands/index.ts';
import * as events from './events/index.ts';

/** Registers every listener; manifest.yml must declare exactly these (test/slack/manifest.test.ts checks). */
export function registerListeners(app: App, deps: ListenerDeps): void {
  actions.register(app, deps);
  commands.register(app, deps);
  events.register(app, deps);
}
