import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PgBoss } from 'pg-boss';
import { ALERT_SOURCES } from './alerts/parse.ts';
import type { Config } from './config/env.ts';
import { alertWebhookRoute } from './http/alert-webhook.ts';
import { describeMetrics, healthRoutes } from './http/health.ts';
import type { Route } from './http/routes.ts';
import { startHttpServer } from './http/server.ts';
import { createLogger, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import type { SlackApp } from './slack/app.ts';
import type { Db } from './store/db.ts';
import { migrate } from './store/migrate.ts';
import { openStore } from './store/open.ts';

/**
 * The composition root: configuration → logger → store (migrated) → routes → transport. Nothing
 * else builds collaborators; everything below takes what it needs as arguments.
 */

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
}

export async function startBot(options: StartOptions): Promise<Bot> {
  const { config } = options;
  const log = options.log ?? createLogger({ level: config.LOG_LEVEL });
  const db = options.db ?? (await openStore(config));
  const ownsDb = options.db === undefined;
  let boss: PgBoss | undefined;
  try {
    const applied = await migrate(db);
    if (applied.length > 0) log.info({ applied }, 'database migrated');
    const { startBoss } = await import('./jobs/boss.ts');
    const { registerWorkers } = await import('./jobs/workers/index.ts');
    const queue = await startBoss(db, log);
    boss = queue;
    const metrics = new Metrics();
    describeMetrics(metrics);
    let slack: SlackApp | undefined;
    const routes: Route[] = [
      ...ALERT_SOURCES.map((source) =>
        alertWebhookRoute(source, {
          db,
          token: config.ALERT_WEBHOOK_TOKEN,
          channel: config.INCIDENT_CHANNEL,
          log,
          metrics,
          onAccepted: () => void slack?.pump.kick(),
        }),
      ),
      ...healthRoutes({ db, metrics }),
    ];
    if (!config.ALERT_WEBHOOK_TOKEN) log.warn('ALERT_WEBHOOK_TOKEN is not set: alert webhooks answer 401');
    if (config.SLACK_BOT_TOKEN) {
      const { startSlackApp } = await import('./slack/app.ts');
      const running = await startSlackApp({ config, db, log, routes });
      slack = running;
      await registerWorkers(queue, { db, log, kick: () => void running.pump.kick() });
      const mode = config.SLACK_APP_TOKEN ? 'Socket Mode' : 'HTTP, /slack/events';
      log.info({ port: running.port, store: db.kind }, `nightshift is serving with Slack (${mode})`);
      return {
        port: running.port,
        db,
        metrics,
        boss: queue,
        slack: running,
        async close() {
          await running.stop();
          await queue.stop({ graceful: true, timeout: 10_000 });
          if (ownsDb) await db.close();
        },
      };
    }
    await registerWorkers(queue, { db, log });
    const server: Server = await startHttpServer(routes, config.PORT, log);
    const port = (server.address() as AddressInfo).port;
    log.info({ port, store: db.kind }, 'nightshift is serving (Slack off: no SLACK_BOT_TOKEN)');
    return {
      port,
      db,
      metrics,
      boss: queue,
      async close() {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await queue.stop({ graceful: true, timeout: 10_000 });
        if (ownsDb) await db.close();
      },
    };
  } catch (error) {
    await boss?.stop({ graceful: false }).catch(() => {});
    if (ownsDb) await db.close();
    throw error;
  }
}
