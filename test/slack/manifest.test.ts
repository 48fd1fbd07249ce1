import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { LISTENED } from '../../src/slack/listeners/index.ts';

/** manifest.yml is what a user pastes into Slack: it and the listeners the code registers must agree. */
const manifest = parse(readFileSync(new URL('../../manifest.yml', import.meta.url), 'utf8')) as {
  features: { slash_commands: Array<{ command: string; url?: string }> };
  oauth_config: { scopes: { bot: string[] } };
  settings: {
    event_subscriptions: { bot_events: string[]; request_url?: string };
    interactivity: { is_enabled: boolean; request_url?: string };
  };
};

describe('manifest.yml and the registered listeners', () => {
  it('declare the same slash commands, both ways', () => {
    assert.deepEqual(
      manifest.features.slash_commands.map((c) => c.command).sort(),
      [...LISTENED.commands].sort(),
    );
  });

  it('declare the same bot events, both ways', () => {
    assert.deepEqual(
      [...manifest.settings.event_subscriptions.bot_events].sort(),
      [...LISTENED.events].sort(),
    );
  });

  it('ask for the scope each listener and each posting needs', () => {
    const scopes = new Set(manifest.oauth_config.scopes.bot);
    const needs: Record<string, string> = {
      app_mention: 'app_mentions:read',
      reaction_added: 'reactions:read',
      '/investigate': 'commands',
    };
    for (const name of [...LISTENED.commands, ...LISTENED.events]) {
      assert.ok(scopes.has(needs[name]!), `${name} needs ${needs[name]}`);
    }
    for (const scope of ['chat:write', 'files:write']) assert.ok(scopes.has(scope), scope);
  });

  it('send events, commands and interactivity to the receiver endpoint', () => {
    const urls = [
      manifest.settings.event_subscriptions.request_url,
      manifest.settings.interactivity.request_url,
      ...manifest.features.slash_commands.map((c) => c.url),
    ];
    for (const url of urls) assert.match(url ?? '', /\/slack\/events$/);
    assert.equal(manifest.settings.interactivity.is_enabled, true);
  });
});
