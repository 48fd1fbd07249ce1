import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { PgBoss } from 'pg-boss';
import type { IncidentTouch } from './alerts/intake.ts';
import { ALERT_SOURCES } from './alerts/parse.ts';
import type { Policy } from './approvals/policy.ts';
import { parseKnownHosts } from './collect/known-hosts.ts';
import { SshConnections } from './collect/ssh.ts';
import type { Config } from './config/env.ts';
import {
  type HostsFile,
  hostsSecretFiles,
  knownHostsPath as knownHostsPathOf,
  loadHostsFile,
} from './config/hosts.ts';
import { loadPolicy } from './config/policy.ts';
import { CodedError, ErrorCode } from './errors.ts';
import { alertWebhookRoute } from './http/alert-webhook.ts';
import { describeMetrics, healthRoutes } from './http/health.ts';
import type { Route } from './http/routes.ts';
import { startHttpServer } from './http/server.ts';
import { stableJobId } from './jobs/job-ids.ts';
import { QUEUES } from './jobs/queues.ts';
import { redactStoredFindings } from './jobs/redact-stored-findings.ts';
import { startSweeper } from './jobs/sweeper.ts';
import { createLogger, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { describeHome, findCgroupHome, removeStaleCgroups } from './runners/cgroup.ts';
import { sandboxUserStatus } from './runners/sandbox-user.ts';
import { checkSqlOnDatabases } from './runners/sql.ts';
import type { SlackApp } from './slack/app.ts';
import type { Db } from './store/db.ts';
import { migrate } from './store/migrate.ts';
import { openStore } from './store/open.ts';

/**
 * The composition root: configuration → logger → store (migrated) → routes → transport. Nothing
 * else builds collaborators; everything below takes what it needs as arguments.
 */

/**
 * How long `nightshift serve` takes at most to stop: the outbox's posts in flight get 5 s
 * (OUTBOX_STOP_DEADLINE_MS), jobs 10 s (pg-boss's graceful stop), and the rest what is left.
 */
export const SHUTDOWN_DEADLINE_MS = 20_000;

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

/** The hosts file, the pinned keys and the SSH connections collection uses. */
async function openCollection(path: string, log: Logger): Promise<{ hosts: HostsFile; ssh: SshConnections }> {
  const hosts = loadHostsFile(path);
  const knownHostsPath = knownHostsPathOf(hosts);
  const knownHosts = parseKnownHosts(await readFile(knownHostsPath, 'utf8').catch(() => ''));
  if (knownHosts.length === 0)
    log.warn({ knownHostsPath }, 'no pinned host keys: every SSH connection will be refused');
  return { hosts, ssh: new SshConnections({ hosts, knownHosts, log }) };
}

export async function startBot(options: StartOptions): Promise<Bot> {
  const { config } = options;
  const log = options.log ?? createLogger({ level: config.LOG_LEVEL });
  const db = options.db ?? (await openStore(config));
  const ownsDb = options.db === undefined;
  let boss: PgBoss | undefined;
  try {
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
    const applied = await migrate(db);
    if (applied.length > 0) log.info({ applied }, 'database migrated');
    // Findings stored in plain text by an older version are redacted in place, once.
    const redacted = await redactStoredFindings(db, evidenceDir);
    if (redacted > 0)
      log.info({ findings: redacted }, 'findings stored before redaction at rest were redacted');
    const { startBoss } = await import('./jobs/boss.ts');
    const { agentWhenClosed, agentWhenRunFailed, registerWorkers, runWhenApproved } = await import(
      './jobs/workers/index.ts'
    );
    const queue = await startBoss(db, log);
    boss = queue;
    // Collection over SSH, when a hosts file is configured: disk incidents start it.
    const collection = config.NIGHTSHIFT_HOSTS
      ? await openCollection(config.NIGHTSHIFT_HOSTS, log)
      : undefined;
    const metrics = new Metrics();
    describeMetrics(metrics);
    const policy = options.policy ?? loadPolicy(config.NIGHTSHIFT_POLICY, config.NIGHTSHIFT_APPROVERS);
    if (policy.approvers.users.length + policy.approvers.usergroups.length === 0)
      log.warn(
        'no approvers (NIGHTSHIFT_APPROVERS or the policy file): proposals can only be rejected or expire',
      );
    const onApproved = runWhenApproved(queue);
    // The agent, only with a key: without one everything else works and threads say it is off.
    const agent = config.ANTHROPIC_API_KEY
      ? {
          model: (await import('./agent/client.ts')).createModelClient({
            apiKey: config.ANTHROPIC_API_KEY,
            baseURL: config.ANTHROPIC_BASE_URL,
            model: config.ANTHROPIC_MODEL,
            log,
          }),
          maxTurns: config.AGENT_MAX_TURNS,
          maxTokens: config.AGENT_MAX_TOKENS,
          sqlDatabases: config.sqlDatabases.map((d) => d.name),
          checkSql: checkSqlOnDatabases(config.sqlDatabases, log),
        }
      : undefined;
    if (!agent) log.info('the agent is off (no ANTHROPIC_API_KEY)');
    const workerDeps = {
      agent,
      db,
      log,
      policy,
      channel: config.INCIDENT_CHANNEL,
      evidenceDir,
      sandboxUser: sandbox.user,
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
        ...(collection && config.NIGHTSHIFT_HOSTS
          ? hostsSecretFiles(collection.hosts, config.NIGHTSHIFT_HOSTS)
          : []),
        ...(config.NIGHTSHIFT_POLICY ? [config.NIGHTSHIFT_POLICY] : []),
      ],
      ...collection,
    };
    let slack: SlackApp | undefined;
    // A proposal of the agent's rejected or expired wakes it (once per proposal), or, when it is
    // off, says so in the thread once.
    const onClosed = agentWhenClosed(queue, {
      db,
      channel: config.INCIDENT_CHANNEL,
      agent,
      kick: () => void slack?.pump.kick(),
    });
    // A run failed by the sweeper (its worker died) wakes the agent as a run's end does.
    const onRunFailed = agentWhenRunFailed(queue, {
      db,
      channel: config.INCIDENT_CHANNEL,
      agent,
      kick: () => void slack?.pump.kick(),
    });
    // One collection per disk incident: the job id comes from the incident, so a second send
    // (the sweeper catching up after a crash between the alert's commit and this send) is a no-op.
    const startCollection = collection
      ? async (incidentId: number, host: string) => {
          await queue.send(
            QUEUES.collectHost.name,
            { incidentId, host },
            { id: stableJobId(`collect-host:${incidentId}`) },
          );
        }
      : undefined;
    const onIncidentOpened = (touch: IncidentTouch) => {
      if (!startCollection || touch.problem !== 'disk') return;
      startCollection(touch.incidentId, touch.host).catch((error: unknown) =>
        log.error(
          { err: error, incident: touch.incidentId },
          'could not start collection; the sweeper will retry',
        ),
      );
    };
    const routes: Route[] = [
      ...ALERT_SOURCES.map((source) =>
        alertWebhookRoute(source, {
          db,
          token: config.ALERT_WEBHOOK_TOKEN,
          channel: config.INCIDENT_CHANNEL,
          log,
          metrics,
          onAccepted: () => void slack?.pump.kick(),
          onIncidentOpened,
        }),
      ),
      ...healthRoutes({ db, metrics }),
    ];
    if (!config.ALERT_WEBHOOK_TOKEN) log.warn('ALERT_WEBHOOK_TOKEN is not set: alert webhooks answer 401');
    if (config.SLACK_BOT_TOKEN) {
      const { startSlackApp } = await import('./slack/app.ts');
      const running = await startSlackApp({
        config,
        db,
        log,
        routes,
        policy,
        onApproved,
        onClosed,
        ...(startCollection ? { startCollection } : {}),
      });
      slack = running;
      await registerWorkers(queue, {
        ...workerDeps,
        kick: () => void running.pump.kick(),
        slack: running.poster,
      });
      const sweeper = startSweeper({
        db,
        log,
        slack: running.poster,
        evidenceDays: config.NIGHTSHIFT_EVIDENCE_DAYS,
        evidenceDir,
        startCollection,
        onClosed,
        onRunFailed,
        agentOn: agent !== undefined,
        channel: config.INCIDENT_CHANNEL,
        kick: () => void running.pump.kick(),
      });
      const mode = config.SLACK_APP_TOKEN ? 'Socket Mode' : 'HTTP, /slack/events';
      log.info({ port: running.port, store: db.kind }, `nightshift is serving with Slack (${mode})`);
      return {
        port: running.port,
        db,
        metrics,
        boss: queue,
        slack: running,
        async close() {
          sweeper.stop();
          await running.stop();
          await queue.stop({ graceful: true, timeout: 10_000 });
          await collection?.ssh.closeAll();
          if (ownsDb) await db.close();
        },
      };
    }
    await registerWorkers(queue, workerDeps);
    const sweeper = startSweeper({
      db,
      log,
      evidenceDays: config.NIGHTSHIFT_EVIDENCE_DAYS,
      evidenceDir,
      startCollection,
      onClosed,
      onRunFailed,
      agentOn: agent !== undefined,
      channel: config.INCIDENT_CHANNEL,
    });
    const server: Server = await startHttpServer(routes, config.PORT, log);
    const port = (server.address() as AddressInfo).port;
    log.info({ port, store: db.kind }, 'nightshift is serving (Slack off: no SLACK_BOT_TOKEN)');
    return {
      port,
      db,
      metrics,
      boss: queue,
      async close() {
        sweeper.stop();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await queue.stop({ graceful: true, timeout: 10_000 });
        await collection?.ssh.closeAll();
        if (ownsDb) await db.close();
      },
    };
  } catch (error) {
    await boss?.stop({ graceful: false }).catch(() => {});
    if (ownsDb) await db.close();
    throw error;
  }
}
