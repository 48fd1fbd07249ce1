import { loadConfig } from '../../src/config/env.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import { type Bot, startBot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { FAKE_IDS, type FakeMessage, type FakeSlack } from './fake-slack.ts';

/**
 * The one place tests start the bot (src/main.ts's startBot): the configuration every such test
 * wrote by hand, the fake Slack's endpoints in it. When startBot's signature changes, only this
 * file follows.
 */

/** The signing secret the fake Slack's signed requests use in these tests (32 hex digits). */
export const SIGNING_SECRET = '0123456789abcdef0123456789abcdef';
/** The bearer token alert webhooks want; the bot is always started with it. */
export const ALERT_TOKEN = 'alert-token-0123456789abcdef';
/** The incident channel: the fake Slack's channel. */
export const CHANNEL = FAKE_IDS.channel;

/**
 * The environment that points a bot at the fake Slack: over HTTP (signed requests to
 * /slack/events) by default, or over Socket Mode with the app token. Also for `nightshift serve`
 * started as a process.
 */
export function fakeSlackEnv(slack: FakeSlack, mode: 'http' | 'socket' = 'http'): Record<string, string> {
  return {
    SLACK_BOT_TOKEN: slack.botToken,
    ...(mode === 'socket' ? { SLACK_APP_TOKEN: slack.appToken } : { SLACK_SIGNING_SECRET: SIGNING_SECRET }),
    SLACK_API_URL: slack.apiUrl,
    INCIDENT_CHANNEL: CHANNEL,
  };
}

/** The log a test bot writes: silent unless TEST_LOG names a level. */
export const testLog = (): Logger => createLogger({ level: process.env.TEST_LOG ?? 'silent' });

export interface TestBotOptions {
  /** The store, already open (a test's schema); the test closes it after the bot. */
  db: Db;
  /** The fake Slack; without it the bot runs without Slack (HTTP routes only). */
  slack?: FakeSlack;
  /** How the bot reaches the fake Slack; HTTP unless 'socket'. */
  mode?: 'http' | 'socket';
  /** More environment as loadConfig reads it (NIGHTSHIFT_*, ANTHROPIC_*); it wins over the defaults. */
  env?: Record<string, string | undefined>;
  /** The HTTP port; 0 (any free one) unless given. */
  port?: number;
  log?: Logger;
}

/** Starts the whole bot on `db`, its webhooks behind ALERT_TOKEN, Slack the fake one if given. */
export function startTestBot(options: TestBotOptions): Promise<Bot> {
  const slackEnv = options.slack ? fakeSlackEnv(options.slack, options.mode) : {};
  return startBot({
    config: {
      ...loadConfig({ ...slackEnv, ALERT_WEBHOOK_TOKEN: ALERT_TOKEN, ...options.env }),
      PORT: options.port ?? 0,
    },
    db: options.db,
    log: options.log ?? testLog(),
  });
}

/** The bot's own URL for `path` (which starts with '/'). */
export const botUrl = (bot: Pick<Bot, 'port'>, path: string) => `http://127.0.0.1:${bot.port}${path}`;

/** Delivers an alert to the bot's webhook for `source` with the bearer token, as a monitor would. */
export function postAlert(
  bot: Pick<Bot, 'port'>,
  source: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(botUrl(bot, `/alerts/${source}`), {
    method: 'POST',
    body,
    headers: { authorization: `Bearer ${ALERT_TOKEN}`, ...headers },
  });
}

/** Top-level messages: as in Slack, a parent with replies carries thread_ts equal to its own ts. */
export const rootsIn = (slack: FakeSlack, channel: string = CHANNEL): FakeMessage[] =>
  (slack.messages.get(channel) ?? []).filter((m) => m.thread_ts === undefined || m.thread_ts === m.ts);
