import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { PgBoss } from 'pg-boss';
import type { IncidentTouch } from './alerts/intake.ts';
import { ALERT_SOURCES } from './alerts/parse.ts';
import type { Policy } from './approvals/policy.ts';
import { systemClock } from './clock.ts';
import { openSsh, type SshSetup } from './collect/ssh-setup.ts';
import type { Config } from './config/env.ts';
import { hostsSecretFiles } from './config/hosts.ts';
import { loadPolicy } from './config/policy.ts';
import { CodedError, ErrorCode } from './errors.ts';
import { alertWebhookRoute } from './http/alert-webhook.ts';
import { describeMetrics, healthRoutes } from './http/health.ts';
import type { Route } from './http/routes.ts';
import { startHttpServer } from './http/server.ts';
import { createBoss, startQueues } from './jobs/boss.ts';
import { stableJobId } from './jobs/job-ids.ts';
import { QUEUES } from './jobs/queues.ts';
import { redactStoredFindings } from './jobs/redact-stored-findings.ts';
import { startSweeper } from './jobs/sweeper.ts';
import type { AgentConfig, WorkerDeps } from './jobs/workers/index.ts';
import { type Component, startComponents } from './lifecycle.ts';
import { createLogger, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { describeHome, findCgroupHome, removeStaleCgroups } from './runners/cgroup.ts';
import { type SandboxUser, sandboxUserStatus } from './runners/sandbox-user.ts';
import { checkSqlOnDatabases } from './runners/sql.ts';
import type { Services } from './services.ts';
import type { SlackApp } from './slack/app.ts';
import type { OutboxPump } from './slack/outbox-pump.ts';
import type { Db } from './store/db.ts';
import { migrate } from './store/migrate.ts';
import { openStore } from './store/open.ts';

/**
 * The composition root: configuration → checks that need nothing open → the store → one Services
 * object → the bot's parts (components), started in order and stopped in reverse by one path on
 * success, on a failed start and on SIGTERM. Nothing else builds collaborators.
 */

/**
 * How long `nightshift serve` takes at most to stop: the outbox's posts in flight get 5 s
 * (OUTBOX_STOP_DEADLINE_MS), jobs 10 s (pg-boss's graceful stop), and the rest what is left.
 */
export const SHUTDOWN_DEADLINE_MS = 20_000;

/** How long stopping waits for jobs in flight, in milliseconds (pg-boss's graceful stop). */
const JOBS_STOP_DEADLINE_MS = 10_000;

export interface Bot {
  port: number;
  db: Db;
  metrics: Metrics;
  slack?: SlackApp;
  /** The job queue (pg-boss), on the same database. */
  boss: PgBoss;
  close(): Promise<void>;
}

export interface StartOptions {
  config: Config;
  log?: Logger;
  /** An already open store (tests); otherwise the configured one is opened and closed with the bot. */
  db?: Db;
  /** The approval policy, as loadSettings read it; otherwise read here from the configuration. */
  policy?: Policy;
}

/** What is decided before anything is opened: each can refuse the start with nothing to undo. */
interface Prepared {
  evidenceDir: string;
  sandboxUser: SandboxUser | undefined;
  policy: Policy;
  agent: AgentConfig | undefined;
  collection: SshSetup | undefined;
}

/** A built bot, not started: its services and its parts in start order (tests start them). */
export interface BuiltBot {
  services: Services;
  boss: PgBoss;
  components: Component[];
  /** The listening port and the Slack app, once the HTTP part started. */
  receiver: { port: number; slack?: SlackApp };
}

export async function startBot(options: StartOptions): Promise<Bot> {
  const built = await buildBot(options);
  const { services, boss, receiver } = built;
  const started = await startComponents(built.components, services.log);
  const { log, db, config } = services;
  if (!receiver.slack)
    log.info(
      { port: receiver.port, store: db.kind },
      'nightshift is serving (Slack off: no SLACK_BOT_TOKEN)',
    );
  else {
    const mode = config.SLACK_APP_TOKEN ? 'Socket Mode' : 'HTTP, /slack/events';
    log.info({ port: receiver.port, store: db.kind }, `nightshift is serving with Slack (${mode})`);
  }
  return {
    port: receiver.port,
    db: services.db,
    metrics: services.metrics,
    boss,
    ...(receiver.slack ? { slack: receiver.slack } : {}),
    close: () => started.stop(),
  };
}

/** Opens the store and builds the services and the parts; nothing listens or runs yet. */
export async function buildBot(options: StartOptions): Promise<BuiltBot> {
  const { config } = options;
  const log = options.log ?? createLogger({ level: config.LOG_LEVEL });
  const prepared = await prepare(options, log);
  const db = options.db ?? (await openStore(config));
  try {
    const pump = config.SLACK_BOT_TOKEN ? await createPump(config, db, log) : undefined;
    const metrics = new Metrics();
    describeMetrics(metrics);
    const services: Services = {
      config,
      log,
      now: systemClock,
      db,
      policy: prepared.policy,
      metrics,
      channel: config.INCIDENT_CHANNEL,
      evidenceDir: prepared.evidenceDir,
      slack: pump?.poster,
      kick: () => void pump?.pump.kick(),
      hosts: prepared.collection?.hosts,
      ssh: prepared.collection?.ssh,
    };
    const boss = createBoss(db, log);
    const parts = await botComponents(services, prepared, boss, options.db === undefined, pump?.pump);
    return { services, boss, ...parts };
  } catch (error) {
    if (options.db === undefined) await db.close();
    throw error;
  }
}

/** The outbox's poster and pump when Slack is on: built before the parts, started as one of them. */
async function createPump(config: Config, db: Db, log: Logger) {
  const { createSlackPoster } = await import('./slack/app.ts');
  const { OutboxPump } = await import('./slack/outbox-pump.ts');
  const poster = createSlackPoster(config, log);
  return { poster, pump: new OutboxPump(db, poster, log, systemClock) };
}

async function prepare(options: StartOptions, log: Logger): Promise<Prepared> {
  const { config } = options;
  const evidenceDir = config.NIGHTSHIFT_EVIDENCE_DIR ?? join(config.NIGHTSHIFT_DATA_DIR, 'evidence');
  // The user evidence scripts run as: a name that does not exist stops the start, not the first run.
  const sandbox = await sandboxUserStatus({
    spec: config.NIGHTSHIFT_SANDBOX_USER,
    botUid: process.getuid?.(),
    evidenceDir,
  });
  if (sandbox.level === 'fail') throw new CodedError(ErrorCode.ConfigInvalid, sandbox.message);
  if (sandbox.level === 'warn') log.warn(sandbox.message);
  else log.info(sandbox.message);
  // Without a cgroup to bound them, evidence scripts are refused: said at start, not first in a thread.
  const cgroups = findCgroupHome({ parent: config.NIGHTSHIFT_SANDBOX_CGROUP });
  if (cgroups.ok) {
    log.info(`evidence scripts are bounded in ${describeHome(cgroups.home)}`);
    const stale = removeStaleCgroups(cgroups.home);
    if (stale > 0) log.info({ cgroups: stale }, 'removed the cgroups of scripts a stopped bot left behind');
  } else log.warn(`evidence scripts will be refused: no cgroup can bound them (${cgroups.reason})`);
  // Collection over SSH, when a hosts file is configured: disk incidents start it.
  const collection = config.NIGHTSHIFT_HOSTS
    ? await openSsh(config.NIGHTSHIFT_HOSTS, { log, now: systemClock })
    : undefined;
  if (collection && collection.pinned === 0)
    log.warn(
      { knownHostsPath: collection.knownHostsPath },
      'no pinned host keys: every SSH connection will be refused',
    );
  const policy = options.policy ?? loadPolicy(config.NIGHTSHIFT_POLICY, config.NIGHTSHIFT_APPROVERS);
  if (policy.approvers.users.length + policy.approvers.usergroups.length === 0)
    log.warn(
      'no approvers (NIGHTSHIFT_APPROVERS or the policy file): proposals can only be rejected or expire',
    );
  const agent = await agentConfig(config, log);
  return { evidenceDir, sandboxUser: sandbox.user, policy, agent, collection };
}

/** The agent, only with a key: without one everything else works and threads say it is off. */
async function agentConfig(config: Config, log: Logger): Promise<AgentConfig | undefined> {
  if (!config.ANTHROPIC_API_KEY) {
    log.info('the agent is off (no ANTHROPIC_API_KEY)');
    return undefined;
  }
  const { createModelClient } = await import('./agent/client.ts');
  return {
    model: createModelClient({
      apiKey: config.ANTHROPIC_API_KEY,
      baseURL: config.ANTHROPIC_BASE_URL,
      model: config.ANTHROPIC_MODEL,
      log,
    }),
    maxTurns: config.AGENT_MAX_TURNS,
    maxTokens: config.AGENT_MAX_TOKENS,
    checkSql: checkSqlOnDatabases(config.sqlDatabases, log),
  };
}

/** What the workers get: the services they use, the sandbox's settings and the agent. */
function workerDeps(services: Services, prepared: Prepared): WorkerDeps {
  const { config } = services;
  return {
    ...services,
    agent: prepared.agent,
    sandboxUser: prepared.sandboxUser,
    sandboxLimits: {
      totalMemoryBytes: config.NIGHTSHIFT_SANDBOX_MEMORY_MIB * 1024 * 1024,
      maxProcesses: config.NIGHTSHIFT_SANDBOX_PROCESSES,
      cgroup: { parent: config.NIGHTSHIFT_SANDBOX_CGROUP },
    },
    sqlDatabases: config.sqlDatabases,
    // Evidence scripts never see the bot's own data (its store, other incidents' evidence), the
    // hosts file, its known_hosts and SSH keys, nor the policy file.
    sandboxHide: [
      config.NIGHTSHIFT_DATA_DIR,
      ...(services.hosts && config.NIGHTSHIFT_HOSTS
        ? hostsSecretFiles(services.hosts, config.NIGHTSHIFT_HOSTS)
        : []),
      ...(config.NIGHTSHIFT_POLICY ? [config.NIGHTSHIFT_POLICY] : []),
    ],
  };
}

/**
 * One collection per disk incident: the job id comes from the incident, so a second send (the
 * sweeper catching up after a crash between the alert's commit and this send) is a no-op.
 */
function collectionStarter(services: Services, boss: PgBoss) {
  if (!services.ssh) return undefined;
  return async (incidentId: number, host: string) => {
    await boss.send(
      QUEUES.collectHost.name,
      { incidentId, host },
      { id: stableJobId(`collect-host:${incidentId}`) },
    );
  };
}

function alertRoutes(services: Services, startCollection: ReturnType<typeof collectionStarter>): Route[] {
  const { config, db, log, metrics } = services;
  const onIncidentOpened = (touch: IncidentTouch) => {
    if (!startCollection || touch.problem !== 'disk') return;
    startCollection(touch.incidentId, touch.host).catch((error: unknown) =>
      log.error(
        { err: error, incident: touch.incidentId },
        'could not start collection; the sweeper will retry',
      ),
    );
  };
  if (!config.ALERT_WEBHOOK_TOKEN) log.warn('ALERT_WEBHOOK_TOKEN is not set: alert webhooks answer 401');
  return [
    ...ALERT_SOURCES.map((source) =>
      alertWebhookRoute(source, {
        db,
        token: config.ALERT_WEBHOOK_TOKEN,
        channel: services.channel,
        log,
        metrics,
        onAccepted: services.kick,
        onIncidentOpened,
      }),
    ),
    ...healthRoutes({ db, metrics }),
  ];
}

/**
 * The bot's parts in start order: store, queue, HTTP (Bolt's receiver when Slack is on), SSH pool,
 * workers, sweeper, outbox pump. Stopped in reverse: the pump's posts in flight get their deadline,
 * the workers' jobs theirs while SSH and the queue are still up, and the store closes last.
 */
async function botComponents(
  services: Services,
  prepared: Prepared,
  boss: PgBoss,
  ownsDb: boolean,
  pump: OutboxPump | undefined,
): Promise<Pick<BuiltBot, 'components' | 'receiver'>> {
  const { agentWhenClosed, agentWhenRunFailed, registerWorkers, runWhenApproved } = await import(
    './jobs/workers/index.ts'
  );
  const { config, db, log } = services;
  const agent = prepared.agent;
  const hook = { db, channel: services.channel, agent, kick: services.kick };
  // A proposal of the agent's rejected or expired wakes it (once per proposal), or, when it is
  // off, says so in the thread once; a run failed by the sweeper (its worker died) wakes it as a
  // run's end does.
  const onClosed = agentWhenClosed(boss, hook);
  const onRunFailed = agentWhenRunFailed(boss, hook);
  const startCollection = collectionStarter(services, boss);
  const receiver: BuiltBot['receiver'] = { port: config.PORT };
  const closeStore = async () => {
    if (ownsDb) await db.close();
  };
  const stopQueue = () => boss.stop({ graceful: false });
  const http = httpComponent(services, receiver, alertRoutes(services, startCollection), {
    pump,
    onApproved: runWhenApproved(boss),
    onClosed,
    startCollection,
  });
  let sweeper: { stop(): void } | undefined;
  const components: Component[] = [
    {
      name: 'store',
      start: () => undoing(prepareStore(db, services.evidenceDir, log), closeStore),
      stop: closeStore,
    },
    // After the workers' graceful stop this only closes the queue's connections; on a failed
    // start (the workers never ran) it stops at once, as nothing is in flight.
    { name: 'queue', start: () => undoing(startQueues(boss), stopQueue), stop: stopQueue },
    http,
    {
      name: 'ssh',
      // Connections are opened by the first command to a host; stopping closes those open.
      start: async () => {},
      stop: async () => services.ssh?.closeAll(),
    },
    {
      name: 'workers',
      start: () => registerWorkers(boss, workerDeps(services, prepared)),
      // Waits for the jobs in flight up to the deadline, leaving the queue's pool to the queue.
      stop: () => boss.stop({ graceful: true, timeout: JOBS_STOP_DEADLINE_MS, close: false }),
    },
    {
      name: 'sweeper',
      start: async () => {
        sweeper = startSweeper({
          ...services,
          evidenceDays: config.NIGHTSHIFT_EVIDENCE_DAYS,
          startCollection,
          onClosed,
          onRunFailed,
          agentOn: agent !== undefined,
        });
      },
      stop: async () => sweeper?.stop(),
    },
  ];
  if (pump) components.push(pumpComponent(pump));
  return { components, receiver };
}

function pumpComponent(pump: OutboxPump): Component {
  return {
    name: 'outbox pump',
    start: async () => pump.start(),
    stop: async () => {
      const { OUTBOX_STOP_DEADLINE_MS } = await import('./slack/app.ts');
      await pump.stop(OUTBOX_STOP_DEADLINE_MS);
    },
  };
}

/** A part's start that failed undoes what it had done (the store opened, pg-boss started), then throws. */
async function undoing(starting: Promise<void>, undo: () => Promise<void>): Promise<void> {
  try {
    await starting;
  } catch (error) {
    await undo().catch(() => {});
    throw error;
  }
}

/** Migrates the store, and redacts in place, once, findings an older version stored in plain text. */
async function prepareStore(db: Db, evidenceDir: string, log: Logger): Promise<void> {
  const applied = await migrate(db);
  if (applied.length > 0) log.info({ applied }, 'database migrated');
  const redacted = await redactStoredFindings(db, evidenceDir);
  if (redacted > 0)
    log.info({ findings: redacted }, 'findings stored before redaction at rest were redacted');
}

/** The HTTP part: Bolt's receiver with the bot's routes beside Slack's when Slack is on, else a plain server. */
function httpComponent(
  services: Services,
  receiver: BuiltBot['receiver'],
  routes: Route[],
  slack: Pick<Parameters<typeof import('./slack/app.ts').startSlackApp>[0], 'onApproved' | 'onClosed'> & {
    pump: OutboxPump | undefined;
    startCollection: ReturnType<typeof collectionStarter>;
  },
): Component {
  const { config, log } = services;
  let stop = async () => {};
  return {
    name: slack.pump ? 'slack' : 'http',
    async start() {
      if (slack.pump && services.slack) {
        const { startSlackApp } = await import('./slack/app.ts');
        const { startCollection, ...rest } = slack;
        const app = await startSlackApp({
          ...services,
          ...rest,
          routes,
          poster: services.slack,
          pump: slack.pump,
          ...(startCollection ? { startCollection } : {}),
        });
        receiver.port = app.port;
        receiver.slack = app;
        stop = () => app.stop();
        return;
      }
      const server: Server = await startHttpServer(routes, config.PORT, log);
      receiver.port = (server.address() as AddressInfo).port;
      stop = () => new Promise<void>((resolve) => server.close(() => resolve()));
    },
    stop: () => stop(),
  };
}
