import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { createLogger } from '../../src/log.ts';
import { INVESTIGATE_SUBCOMMANDS, parseIncidentCommand } from '../../src/slack/commands.ts';
import type { ListenerDeps } from '../../src/slack/deps.ts';
import { registerListeners } from '../../src/slack/listeners/index.ts';
import type { Db } from '../../src/store/db.ts';
import { type Matcher, recordingApp } from '../helpers/recording-app.ts';

/**
 * manifest.yml is what a user pastes into Slack: it and the listeners the code registers must
 * agree. What the code registers is read by running registerListeners() on a recording stand-in
 * for Bolt's App, not from a list kept by hand beside it.
 */
const manifest = parse(readFileSync(new URL('../../manifest.yml', import.meta.url), 'utf8')) as {
  features: {
    slash_commands?: Array<{ command: string; url?: string; usage_hint?: string; description?: string }>;
    shortcuts?: Array<{ callback_id: string; type: string }>;
  };
  oauth_config: { scopes: { bot: string[] } };
  settings: {
    event_subscriptions: { bot_events: string[]; request_url?: string };
    interactivity?: { is_enabled: boolean; request_url?: string };
  };
};

/** Registration only builds the callbacks; none runs, so nothing here is ever used. */
const unused: Db = {
  kind: 'pglite',
  schema: 'unused',
  executeSql: () => Promise.reject(new Error('no query runs while listeners are registered')),
  transaction: () => Promise.reject(new Error('no query runs while listeners are registered')),
  close: async () => {},
};
const deps: ListenerDeps = {
  db: unused,
  log: createLogger({ level: 'silent' }),
  channel: 'C0MANIFEST',
  kick: () => {},
  refresh: async () => {},
  now: () => new Date(0),
  approvals: {
    isApprover: async () => false,
    refresh: async () => {},
    onApproved: async () => {},
    onClosed: async () => {},
  },
};
const { app, registered } = recordingApp();
registerListeners(app, deps);

const matches = (matcher: Matcher, name: string) =>
  typeof matcher === 'string'
    ? matcher === name
    : new RegExp(matcher.source, matcher.flags.replace('g', '')).test(name);
const shown = (matcher: Matcher | undefined) => (matcher === undefined ? '(any id)' : String(matcher));

/**
 * Both directions at once: each registered matcher must match something declared (else Slack
 * never sends it), each declared name must be matched by something registered (else Slack sends
 * what nobody handles, and asks for scopes nobody needs).
 */
function compare(what: string, registeredMatchers: Matcher[], declared: string[]) {
  const undeclared = registeredMatchers.filter((m) => !declared.some((name) => matches(m, name)));
  const unhandled = declared.filter((name) => !registeredMatchers.some((m) => matches(m, name)));
  assert.deepEqual(
    { undeclared: undeclared.map(shown), unhandled },
    { undeclared: [], unhandled: [] },
    `${what}: registered but missing from manifest.yml (undeclared), or in manifest.yml but never registered (unhandled)`,
  );
}

/** app.message() listens to the `message` event, which the manifest subscribes to per kind of conversation. */
const eventFamily = (botEvent: string) => botEvent.split('.')[0]!;
const registeredEvents: Matcher[] = [
  ...registered.events,
  ...(registered.messages.length > 0 ? ['message'] : []),
];
const interactive = [
  ...registered.actions,
  ...registered.views,
  ...registered.shortcuts,
  ...registered.options,
];
const interactivityOn = manifest.settings.interactivity?.is_enabled === true;

/** The scope each bot event needs (api.slack.com/events/<name>, "Required scopes"). */
const EVENT_SCOPES: Record<string, string> = {
  app_mention: 'app_mentions:read',
  reaction_added: 'reactions:read',
  reaction_removed: 'reactions:read',
  'message.channels': 'channels:history',
  'message.groups': 'groups:history',
  'message.im': 'im:history',
  'message.mpim': 'mpim:history',
  member_joined_channel: 'channels:read',
  channel_archive: 'channels:read',
};

describe('manifest.yml and the registered listeners', () => {
  it('are read from registerListeners itself: the recorder sees what it registers', () => {
    assert.ok(registered.commands.length > 0 && registered.events.length > 0, JSON.stringify(registered));
    const probe = recordingApp();
    probe.app.action({ action_id: /^approve:/ }, async () => {});
    probe.app.view('reason', async () => {});
    assert.deepEqual(probe.registered.actions, [/^approve:/]);
    assert.deepEqual(probe.registered.views, ['reason']);
  });

  it('declare the same slash commands, both ways', () => {
    compare(
      'slash commands',
      registered.commands,
      (manifest.features.slash_commands ?? []).map((c) => c.command),
    );
  });

  it("give /investigate's every subcommand in its usage_hint, within Slack's lengths", () => {
    const investigate = (manifest.features.slash_commands ?? []).find((c) => c.command === '/investigate');
    const hint = investigate?.usage_hint ?? '';
    const words = new Set(hint.split(/[^a-z]+/));
    for (const sub of INVESTIGATE_SUBCOMMANDS) assert.ok(words.has(sub), `usage_hint lacks ${sub}: ${hint}`);
    assert.match(hint, /^<host> \[note\]/, 'opening an incident for a host comes first');
    // Each listed word is one the parser reads as that subcommand, not as a host to open.
    for (const sub of INVESTIGATE_SUBCOMMANDS) assert.notEqual(parseIncidentCommand(sub).kind, 'open', sub);
    // Slack's manifest schema: usage_hint and description at most 1,000 and 2,000 characters.
    assert.ok(hint.length <= 1000 && (investigate?.description ?? '').length <= 2000);
  });

  it('declare the same bot events, both ways', () => {
    compare(
      'bot events',
      registeredEvents,
      manifest.settings.event_subscriptions.bot_events.map(eventFamily),
    );
  });

  it('declare the same shortcuts, both ways', () => {
    const ids = registered.shortcuts.filter((s): s is Matcher => s !== undefined);
    compare(
      'shortcuts',
      ids,
      (manifest.features.shortcuts ?? []).map((s) => s.callback_id),
    );
  });

  it('turn interactivity on when an action, view, shortcut or options listener is registered', () => {
    if (interactive.length > 0) {
      assert.equal(
        interactivityOn,
        true,
        `settings.interactivity.is_enabled must be true: Slack sends ${interactive.map(shown).join(', ')} only then`,
      );
    }
  });

  // The other direction: interactivity on in the manifest with nothing to receive it means Slack
  // posts clicks that no listener acks (the user sees a warning).
  it('register an interactive listener when interactivity is on', () => {
    if (interactivityOn) assert.ok(interactive.length > 0, 'interactivity is on but no listener receives it');
  });

  it("receive the approve and reject buttons of proposals, and the root message's buttons", () => {
    assert.deepEqual([...registered.actions].map(shown).sort(), [
      'incident_mitigated',
      'incident_resolve',
      'incident_take_command',
      'proposal_approve',
      'proposal_reject',
    ]);
  });

  it('ask for the scope each registered listener and each posting needs', () => {
    const scopes = new Set(manifest.oauth_config.scopes.bot);
    // Each declared bot event equals a registered one (checked above), so this is driven by what is registered.
    const subscribed = manifest.settings.event_subscriptions.bot_events.filter((e) =>
      registeredEvents.some((m) => matches(m, eventFamily(e))),
    );
    for (const event of subscribed) {
      const scope = EVENT_SCOPES[event];
      assert.ok(scope, `${event}: add the scope it needs to EVENT_SCOPES`);
      assert.ok(scopes.has(scope), `${event} needs ${scope}`);
    }
    if (registered.commands.length > 0 || registered.shortcuts.length > 0)
      assert.ok(scopes.has('commands'), 'slash commands and shortcuts need the commands scope');
    // The outbox posts and updates messages and uploads long text as files.
    for (const scope of ['chat:write', 'files:write']) assert.ok(scopes.has(scope), scope);
  });

  it('send events, commands and interactivity to the receiver endpoint', () => {
    const urls = [
      manifest.settings.event_subscriptions.request_url,
      ...(interactivityOn ? [manifest.settings.interactivity?.request_url] : []),
      ...(manifest.features.slash_commands ?? []).map((c) => c.url),
    ];
    for (const url of urls) assert.match(url ?? '', /\/slack\/events$/);
  });
});
