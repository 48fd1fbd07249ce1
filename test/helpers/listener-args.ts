import type { AllMiddlewareArgs, RespondArguments } from '@slack/bolt';
import { WebClient } from '@slack/web-api';
import type { Proposal } from '../../src/approvals/service.ts';
import { createLogger } from '../../src/log.ts';
import type { ListenerDeps } from '../../src/slack/deps.ts';
import { proposalMessageKey } from '../../src/slack/proposal-messages.ts';
import type { Db } from '../../src/store/db.ts';
import { CHANNEL } from './bot.ts';
import type { FakeSlack } from './fake-slack.ts';
import { APPROVER } from './proposals.ts';

/**
 * A listener callback (src/slack/listeners/) called directly, as the Bolt starter template's tests
 * do: no App, no receiver. The payload comes from fake-slack.ts's builders; what Bolt adds is
 * built here: ack and respond record what they were given, the logger records errors, and client
 * is a real WebClient on the fake Slack (so a post lands where a test can read it).
 */

/** The clock the listeners are given: fixed, so nothing depends on when the test runs. */
export const NOW = new Date('2026-11-26T03:00:00.000Z');

export interface Heard {
  /** What each ack() was called with (undefined for a bare ack). */
  acks: unknown[];
  responses: RespondArguments[];
  /** What the listener logged as an error. */
  errors: unknown[];
}

/** The arguments Bolt passes a listener besides its payload. */
export function boltArgs(slack: FakeSlack): { args: Partial<AllMiddlewareArgs> & BoltExtras; heard: Heard } {
  const heard: Heard = { acks: [], responses: [], errors: [] };
  const silent = () => {};
  const logger = {
    debug: silent,
    info: silent,
    warn: silent,
    error: (...messages: unknown[]) => void heard.errors.push(...messages),
    setLevel: silent,
    getLevel: () => 'error',
    setName: silent,
  } as unknown as AllMiddlewareArgs['logger'];
  return {
    args: {
      ack: async (answer?: unknown) => void heard.acks.push(answer),
      respond: async (answer: RespondArguments) => void heard.responses.push(answer),
      logger,
      client: new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } }),
      context: { isEnterpriseInstall: false },
      next: async () => {},
    },
    heard,
  };
}

interface BoltExtras {
  ack(answer?: unknown): Promise<void>;
  respond(answer: RespondArguments): Promise<void>;
}

/** What the listeners asked of the rest of the bot, in order. */
export interface Asked {
  kicks: number;
  /** Incidents whose root was re-rendered. */
  refreshedIncidents: number[];
  /** Proposals whose message was re-rendered. */
  refreshedProposals: number[];
  approved: number[];
  closed: number[];
  collections: Array<{ incidentId: number; host: string }>;
}

/**
 * ListenerDeps on a real store, recording what the listener asked the outbox, queue and agent to
 * do; `over` replaces any part (the clock, or no collection as when the bot has no hosts file).
 */
export function listenerDeps(db: Db, over: Partial<ListenerDeps> = {}): { deps: ListenerDeps; asked: Asked } {
  const asked: Asked = {
    kicks: 0,
    refreshedIncidents: [],
    refreshedProposals: [],
    approved: [],
    closed: [],
    collections: [],
  };
  const deps: ListenerDeps = {
    db,
    log: createLogger({ level: 'silent' }),
    channel: CHANNEL,
    kick: () => void asked.kicks++,
    refresh: async (id) => void asked.refreshedIncidents.push(id),
    now: () => NOW,
    startCollection: async (incidentId, host) => void asked.collections.push({ incidentId, host }),
    approvals: {
      isApprover: async (user) => user === APPROVER,
      refresh: async (id) => void asked.refreshedProposals.push(id),
      onApproved: async (proposal: Proposal) => void asked.approved.push(proposal.id),
      onClosed: async (proposal: Proposal) => void asked.closed.push(proposal.id),
    },
    ...over,
  };
  return { deps, asked };
}

/** A store whose every statement fails, as when the database is gone: the listener's error path. */
export function brokenStore(db: Db): Db {
  const fail = () => Promise.reject(new Error('connection terminated: password=hunter2'));
  return new Proxy(db, {
    get: (target, prop) =>
      prop === 'executeSql' || prop === 'transaction' ? fail : Reflect.get(target, prop, target),
  });
}

/**
 * Calls `listener` with `payload` (command, event and body, or action and body, as fake-slack.ts
 * builds them) beside Bolt's other arguments. The cast is the test's: the builders produce the
 * wire shapes, which Bolt's types describe more narrowly per event.
 */
export function callListener<A>(
  listener: (args: A) => Promise<unknown>,
  args: ReturnType<typeof boltArgs>['args'],
  payload: Record<string, unknown>,
): Promise<unknown> {
  return listener({ ...args, ...payload } as unknown as A);
}

/**
 * What the outbox records once Slack has the incident's root (at `rootTs`) and, for each
 * proposal given, its message (at the ts given): what a reaction or a mention in the thread is
 * matched against.
 */
export async function postedInSlack(
  db: Db,
  incidentId: number,
  rootTs: string,
  proposals: Array<{ id: number; ts: string }> = [],
): Promise<void> {
  await db.executeSql('UPDATE incidents SET channel = $2, root_ts = $3 WHERE id = $1', [
    incidentId,
    CHANNEL,
    rootTs,
  ]);
  for (const { id, ts } of proposals)
    await db.executeSql('UPDATE thread_messages SET ts = $2, posted_at = now() WHERE dedup_key = $1', [
      proposalMessageKey(id),
      ts,
    ]);
}
