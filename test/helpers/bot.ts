import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { createProposal, type NewProposal, type Proposal } from '../../src/approvals/service.ts';
import { loadConfig } from '../../src/config/env.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import { type Bot, startBot } from '../../src/main.ts';
import { queueProposalMessage } from '../../src/slack/proposal-messages.ts';
import type { Db } from '../../src/store/db.ts';
import type { TestDatabase } from './db.ts';
import {
  eventCallbackBody,
  FAKE_IDS,
  type FakeMessage,
  type FakeSlack,
  reactionAddedEvent,
  signedRequest,
  startFakeSlack,
} from './fake-slack.ts';
import { APPROVER, approverPolicy } from './proposals.ts';
import { until } from './wait.ts';

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

/**
 * A signed Events API delivery of `body` to the bot, as Slack sends it; with `retry`, as Slack
 * sends it again when the first answer was late (X-Slack-Retry-Num 1, http_timeout).
 */
export function deliverEvent(bot: Pick<Bot, 'port'>, body: string, retry = false) {
  return signedRequest(
    botUrl(bot, '/slack/events'),
    SIGNING_SECRET,
    body,
    undefined,
    retry ? { retryNum: 1, retryReason: 'http_timeout' } : undefined,
  );
}

/** `user`'s reaction on the message at `ts` in the incident channel, delivered as event `eventId`. */
export function reactOn(
  bot: Pick<Bot, 'port'>,
  reaction: { user: string; name: string; ts: string },
  eventId: string,
) {
  const event = reactionAddedEvent({
    user: reaction.user,
    reaction: reaction.name,
    item: { type: 'message', channel: CHANNEL, ts: reaction.ts },
  });
  return deliverEvent(bot, eventCallbackBody(event, { eventId }));
}

/** The bot with one incident opened by hand, its data in a directory of its own. */
export interface IncidentBot {
  slack: FakeSlack;
  db: Db;
  bot: Bot;
  /** The bot's data directory (NIGHTSHIFT_DATA_DIR), removed by close(). */
  work: string;
  incidentId: number;
  /**
   * Proposes `input` (for the incident, by the bot itself, under APPROVER's policy), queues its
   * message and waits until Slack has it.
   */
  propose(
    input: Pick<NewProposal, 'kind' | 'target' | 'text'>,
    now?: Date,
  ): Promise<{ proposal: Proposal; message: FakeMessage }>;
  close(): Promise<void>;
}

/**
 * The bot on `database` against the fake Slack, APPROVER its approver, its data in a new
 * directory named after `name`, and an incident opened by hand on `host` with its root posted:
 * where the tests of proposals decided in Slack start.
 */
export async function startIncidentBot(
  database: TestDatabase,
  options: { name: string; host: string; note: string; env?: Record<string, string> },
): Promise<IncidentBot> {
  const work = mkdtempSync(join(tmpdir(), `nightshift-${options.name}-`));
  const slack = await startFakeSlack();
  const db = await database.open();
  const bot = await startTestBot({
    db,
    slack,
    env: { NIGHTSHIFT_APPROVERS: APPROVER, NIGHTSHIFT_DATA_DIR: work, ...options.env },
  });
  const { incident } = await openIncidentByHand(db, {
    host: options.host,
    note: options.note,
    user: APPROVER,
    channel: CHANNEL,
  });
  await bot.slack!.pump.kick();
  const propose: IncidentBot['propose'] = async (input, now = new Date()) => {
    const proposal = await createProposal(
      db,
      { incidentId: incident.id, ...input, why: 'test', proposedBy: 'nightshift' },
      approverPolicy,
      now,
    );
    await queueProposalMessage(db, proposal, CHANNEL, now);
    await bot.slack!.pump.kick();
    const message = await until('the proposal message', () =>
      (slack.messages.get(CHANNEL) ?? []).find((m) => (m.text ?? '').startsWith(`Proposal #${proposal.id} `)),
    );
    return { proposal, message };
  };
  const close = async () => {
    await bot.close();
    await db.close();
    await slack.close();
    rmSync(work, { recursive: true, force: true });
  };
  return { slack, db, bot, work, incidentId: incident.id, propose, close };
}

/**
 * A bot on a fresh store of `database`, for the enclosing describe: started before its tests, closed
 * after them (the bot first, then the store it writes to).
 */
export function suiteBot(database: TestDatabase): () => { bot: Bot; db: Db } {
  let started: { bot: Bot; db: Db } | undefined;
  before(async () => {
    const db = await database.open();
    try {
      started = { db, bot: await startTestBot({ db }) };
    } catch (error) {
      await db.close();
      throw error;
    }
  });
  after(async () => {
    await started?.bot.close();
    await started?.db.close();
  });
  return () => started!;
}

/** A fake Slack for the enclosing describe: started before its tests, closed after them. */
export function suiteSlack(): () => FakeSlack {
  let slack: FakeSlack | undefined;
  before(async () => {
    slack = await startFakeSlack();
  });
  after(async () => {
    await slack?.close();
  });
  return () => slack!;
}

/** Where `nightshift serve` is, for the tests that start it as a process. */
export const NIGHTSHIFT_BIN = new URL('../../bin/nightshift', import.meta.url).pathname;

/**
 * The environment `nightshift serve` gets in tests: the embedded store in `dataDir`, no hosts
 * file, the fake Slack over HTTP, the alert token, `port`, and no log.
 */
export function serveEnv(slack: FakeSlack, dataDir: string, port: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: '',
    NIGHTSHIFT_HOSTS: '',
    NIGHTSHIFT_DATA_DIR: dataDir,
    ALERT_WEBHOOK_TOKEN: ALERT_TOKEN,
    ...fakeSlackEnv(slack),
    PORT: String(port),
    LOG_LEVEL: 'silent',
  };
}
