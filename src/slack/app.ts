import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  App,
  type Logger as BoltLogger,
  HTTPReceiver,
  LogLevel,
  SocketModeReceiver,
  webApi,
} from '@slack/bolt';

type WebClient = webApi.WebClient;
const WebClientClass = webApi.WebClient;

import type { Policy } from '../approvals/policy.ts';
import type { Proposal } from '../approvals/service.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config/env.ts';
import type { Route } from '../http/routes.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { ListenerDeps } from './deps.ts';
import { registerListeners } from './listeners/index.ts';
import type { OutboxPump } from './outbox-pump.ts';
import type { SlackPoster, TaggedMessage } from './poster.ts';
import { approverCheck, refreshProposalMessage } from './proposal-messages.ts';
import { refreshRoot } from './root-message.ts';

/**
 * The Slack app: Bolt over HTTP (events, interactivity and commands at /slack/events, with the
 * bot's own routes beside them) or over Socket Mode when SLACK_APP_TOKEN is set, for teams
 * without a public URL (the routes then get a small HTTP server of their own on PORT).
 */

export function boltLogger(log: Logger): BoltLogger {
  const child = log.child({ component: 'bolt' });
  let level = LogLevel.INFO;
  return {
    debug: (...msg) => child.debug(msg.map(String).join(' ')),
    info: (...msg) => child.info(msg.map(String).join(' ')),
    warn: (...msg) => child.warn(msg.map(String).join(' ')),
    error: (...msg) => child.error(msg.map((m) => (m instanceof Error ? m.message : String(m))).join(' ')),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

/**
 * Every Slack request gives up after this long, in milliseconds: the Web API client's default
 * (0) never does, and one request that never answered stopped all posting.
 */
export const SLACK_REQUEST_TIMEOUT_MS = 10_000;

/**
 * The outbox's client makes each request once: a timeout, a 5xx or a cut connection may have been
 * carried out by Slack, so the outbox retries those itself, after looking for the tagged message
 * (outbox.ts), and a post whose answer was lost is not posted twice. A 429 was not carried out:
 * it comes back as a rate-limited error, and the poster waits it out and sends again.
 */
export const POSTER_CLIENT_OPTIONS = { rejectRateLimitedCalls: true, retryConfig: { retries: 0 } };

/** Sends again after each 429 (Slack did not carry the call out), waiting its Retry-After; at most `times`. */
async function waitingOutRateLimits<T>(call: () => Promise<T>, times = 5): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const { code, retryAfter } = error as { code?: string; retryAfter?: number };
      if (code !== webApi.ErrorCode.RateLimitedError || attempt >= times) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, retryAfter ?? 1) * 1000));
    }
  }
}

/** How long a stopping bot waits for its Slack posts in flight before giving their claims back. */
export const OUTBOX_STOP_DEADLINE_MS = 5000;

/**
 * The outbox's view of the Web API client. Messages quote outside text (a URL in an alert or in a
 * run's output): no preview of it is unfurled under the bot's message, and no `@channel` in it is
 * turned into a ping.
 */
export function slackPoster(client: WebClient): SlackPoster {
  return {
    async postMessage(args) {
      const result = await waitingOutRateLimits(() =>
        client.chat.postMessage({
          ...args,
          blocks: args.blocks as never,
          ...(args.metadata ? { metadata: args.metadata as never } : {}),
          unfurl_links: false,
          unfurl_media: false,
          link_names: false,
        }),
      );
      return {
        ...(result.channel ? { channel: result.channel } : {}),
        ...(result.ts ? { ts: result.ts } : {}),
      };
    },
    update: (args) =>
      waitingOutRateLimits(() =>
        client.chat.update({ ...args, blocks: args.blocks as never, link_names: false }),
      ),
    async uploadFile({ content, filename }) {
      const bytes = Buffer.from(content, 'utf8');
      const url = await waitingOutRateLimits(() =>
        client.files.getUploadURLExternal({ filename, length: bytes.length }),
      );
      if (!url.upload_url || !url.file_id) throw new Error('files.getUploadURLExternal gave no upload URL');
      // The bytes go to the URL Slack gave, as the Web API client's uploadV2 sends them, with the
      // same deadline as every Slack request.
      const res = await fetch(url.upload_url, {
        method: 'POST',
        body: bytes,
        headers: { authorization: `Bearer ${client.token}`, 'content-type': 'application/octet-stream' },
        signal: AbortSignal.timeout(SLACK_REQUEST_TIMEOUT_MS),
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`uploading ${filename} to Slack answered ${res.status}`);
      return { fileId: url.file_id };
    },
    shareFile: ({ fileId, title, ...where }) =>
      waitingOutRateLimits(() =>
        client.files.completeUploadExternal({ files: [{ id: fileId, title }], ...where }),
      ),
    async history({ channel, threadTs }) {
      const found: TaggedMessage[] = [];
      let cursor: string | undefined;
      // A few pages at most: the message looked for is recent (a thread, or the last minutes).
      for (let page = 0; page < 5; page++) {
        const common = { channel, include_all_metadata: true, limit: 200, ...(cursor ? { cursor } : {}) };
        const result = threadTs
          ? await waitingOutRateLimits(() => client.conversations.replies({ ...common, ts: threadTs }))
          : await waitingOutRateLimits(() => client.conversations.history(common));
        for (const m of result.messages ?? [])
          if (m.ts)
            found.push({
              ts: m.ts,
              ...(m.metadata ? { metadata: m.metadata as TaggedMessage['metadata'] } : {}),
              ...(m.files?.length ? { files: m.files.flatMap((f) => (f.id ? [f.id] : [])) } : {}),
            });
        cursor = result.response_metadata?.next_cursor || undefined;
        if (!cursor) break;
      }
      return found;
    },
  };
}

export interface SlackApp {
  port: number;
  pump: OutboxPump;
  /** The Web API as the outbox and the jobs use it. */
  poster: SlackPoster;
  stop(): Promise<void>;
}

/** What startSlackApp is given. */
export interface SlackAppOptions {
  config: Config;
  db: Db;
  log: Logger;
  routes: Route[];
  now: Clock;
  /** The outbox's poster and pump, built by main.ts, which starts and stops the pump as a part of its own. */
  poster: SlackPoster;
  pump: OutboxPump;
  /** The approval policy (who may approve) and what to do once a proposal is approved. */
  policy: Policy;
  onApproved: (proposal: Proposal) => Promise<void>;
  /** What to do once a proposal is rejected or found expired (wake the agent that made it). */
  onClosed: (proposal: Proposal) => Promise<void>;
  /** The collection a disk alert starts, for `/investigate <host>`; absent without a hosts file. */
  startCollection?: (incidentId: number, host: string) => Promise<void>;
}

export async function startSlackApp(options: SlackAppOptions): Promise<SlackApp> {
  const { config, log, now, poster, pump } = options;
  const logger = boltLogger(log);
  const receiver = slackReceiver(config, options.routes, logger);
  const app = new App({
    token: config.SLACK_BOT_TOKEN,
    receiver,
    logger,
    clientOptions: slackClientOptions(config),
  });
  registerListeners(app, listenerDeps(options, app, poster, pump, now));
  app.error(async (error) => {
    log.error({ err: error }, 'slack listener failed');
  });
  const port = await listen(app, receiver, config);
  return {
    port,
    pump,
    poster,
    async stop() {
      await app.stop();
    },
  };
}

/**
 * The Web API client's options. Each client gets its own copy: SocketModeClient writes its own
 * retry policy (100 retries) into the object it is given, which would otherwise leak into the
 * App's Web API client.
 */
export function slackClientOptions(config: Config) {
  return {
    ...(config.SLACK_API_URL ? { slackApiUrl: config.SLACK_API_URL } : {}),
    // A few retries for 5xx and network errors (Slack's 429s are waited out per Retry-After
    // anyway); the default, ten over half an hour, would stall the outbox behind one message.
    retryConfig: { retries: 3, factor: 2, minTimeout: 500, maxTimeout: 5000 },
    timeout: SLACK_REQUEST_TIMEOUT_MS,
  };
}

/** The outbox's own client: the same deadline, each request sent once (POSTER_CLIENT_OPTIONS). */
export function createSlackPoster(config: Config, log: Logger): SlackPoster {
  const options = { ...slackClientOptions(config), ...POSTER_CLIENT_OPTIONS, logger: boltLogger(log) };
  return slackPoster(new WebClientClass(config.SLACK_BOT_TOKEN, options));
}

/** Socket Mode when SLACK_APP_TOKEN is set, else HTTP at /slack/events; the bot's routes beside. */
function slackReceiver(config: Config, routes: Route[], logger: BoltLogger) {
  return config.SLACK_APP_TOKEN !== undefined
    ? new SocketModeReceiver({
        appToken: config.SLACK_APP_TOKEN,
        customRoutes: routes,
        installerOptions: { port: config.PORT, clientOptions: slackClientOptions(config) },
        logger,
      })
    : new HTTPReceiver({
        signingSecret: config.SLACK_SIGNING_SECRET!,
        endpoints: '/slack/events',
        customRoutes: routes,
        logger,
      });
}

/** What the listeners are given: the store, the outbox's kick, the approval gate. */
function listenerDeps(
  options: SlackAppOptions,
  app: App,
  poster: SlackPoster,
  pump: OutboxPump,
  now: Clock,
): ListenerDeps {
  const { db, log } = options;
  return {
    db,
    log,
    channel: options.config.INCIDENT_CHANNEL,
    kick: () => void pump.kick(),
    refresh: (incidentId) => refreshRoot(db, poster, incidentId, now()),
    now,
    ...(options.startCollection ? { startCollection: options.startCollection } : {}),
    approvals: {
      isApprover: approverCheck(
        options.policy,
        async (usergroup) => (await app.client.usergroups.users.list({ usergroup })).users ?? [],
        log,
      ),
      refresh: (id) => refreshProposalMessage(db, poster, id, now(), undefined, log),
      onApproved: options.onApproved,
      onClosed: options.onClosed,
    },
  };
}

/** Starts the app; the port it listens on (the routes' own server's, in Socket Mode). */
async function listen(
  app: App,
  receiver: SocketModeReceiver | HTTPReceiver,
  config: Config,
): Promise<number> {
  if (receiver instanceof SocketModeReceiver) {
    await app.start();
    const server = (receiver as unknown as { httpServer?: Server }).httpServer;
    const address = server?.address() as AddressInfo | null | undefined;
    return address ? address.port : config.PORT;
  }
  const server = (await app.start(config.PORT)) as Server;
  return (server.address() as AddressInfo).port;
}
