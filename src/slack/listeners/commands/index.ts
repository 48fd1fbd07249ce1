import type { App } from '@slack/bolt';
import type { ListenerDeps } from '../../deps.ts';
import { investigateCallback } from './investigate.ts';

/** Slash commands; each must be declared under features.slash_commands in manifest.yml. */
export function register(app: App, deps: ListenerDeps): void {
  app.command('/investigate', investigateCallback(deps));
}
