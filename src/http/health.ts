import type { Gauge } from 'prom-client';
import type { ComputedMetric, Metrics } from '../metrics.ts';
import { OUTBOX_STUCK_AFTER_S } from '../slack/outbox-options.ts';
import type { Db } from '../store/db.ts';
import { outboxBacklog } from '../store/outbox.ts';
import { approvalLatency, histogram, jobCounts, openIncidentCounts, ping } from '../store/stats.ts';
import { type Route, sendJson } from './routes.ts';

/** /healthz: the process answers. /readyz: the store answers too. /metrics: Prometheus. */
export function healthRoutes(deps: { db: Db; metrics: Metrics }): Route[] {
  return [
    { path: '/healthz', method: ['GET'], handler: (_req, res) => sendJson(res, 200, { status: 'ok' }) },
    {
      path: '/readyz',
      method: ['GET'],
      async handler(_req, res) {
        try {
          await ping(deps.db);
          sendJson(res, 200, { status: 'ready', store: deps.db.kind });
        } catch (error) {
          sendJson(res, 503, { status: 'not ready', store: deps.db.kind, error: (error as Error).message });
        }
      },
    },
    {
      path: '/metrics',
      method: ['GET'],
      async handler(_req, res) {
        await scrapeStore(deps.db, deps.metrics);
        const text = await deps.metrics.render();
        res.writeHead(200, { 'content-type': deps.metrics.contentType });
        res.end(text);
      },
    },
  ];
}

/** Upper bounds of the latency histograms, in seconds (the goals: 0.3 s to the root, 0.5 s to the run). */
export const LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Upper bounds of the analysis throughput histogram, in bytes per second. */
export const THROUGHPUT_BUCKETS = [1e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 2e9, 4e9];

/** Sets every metric the store knows; nightshift_store_up says whether it answered. */
export async function scrapeStore(db: Db, metrics: Metrics): Promise<void> {
  const gauge = (name: string) => metrics.registry.getSingleMetric(name) as Gauge | undefined;
  const computed = (name: string) => metrics.registry.getSingleMetric(name) as ComputedMetric | undefined;
  try {
    const incidents = await openIncidentCounts(db);
    const open = gauge('nightshift_incidents_open');
    for (const status of ['open', 'investigating', 'mitigated'])
      open?.set({ status }, incidents.find((r) => r.status === status)?.n ?? 0);
    const byState = gauge('nightshift_jobs');
    const jobs = await jobCounts(db);
    byState?.reset();
    for (const row of jobs) byState?.set({ state: row.state }, row.n);
    // Approval latency: from a proposal being posted to its approval, over the last day.
    const l = await approvalLatency(db);
    computed('nightshift_approval_latency_seconds')?.set({
      count: l.n,
      sum: l.total ?? 0,
      quantiles: [
        { quantile: 0.5, value: l.p50 ?? 0 },
        { quantile: 0.99, value: l.p99 ?? 0 },
      ],
    });
    computed('nightshift_alert_to_root_seconds')?.set(await histogram(db, 'alertToRoot', LATENCY_BUCKETS_S));
    computed('nightshift_approval_to_run_seconds')?.set(
      await histogram(db, 'approvalToRun', LATENCY_BUCKETS_S),
    );
    computed('nightshift_analysis_throughput_bytes_per_second')?.set(
      await histogram(db, 'analysisThroughput', THROUGHPUT_BUCKETS),
    );
    // The Slack outbox: messages still to post (waiting for a retry included), messages given
    // up on after their last attempt, and how long the oldest one still to post has waited.
    const o = await outboxBacklog(db);
    gauge('nightshift_outbox_messages')?.set({ state: 'pending' }, o.pending);
    gauge('nightshift_outbox_messages')?.set({ state: 'dead' }, o.dead);
    gauge('nightshift_outbox_oldest_pending_seconds')?.set(o.oldestSeconds);
    gauge('nightshift_outbox_stuck')?.set(o.oldestSeconds > OUTBOX_STUCK_AFTER_S ? 1 : 0);
    gauge('nightshift_store_up')?.set(1);
  } catch {
    gauge('nightshift_store_up')?.set(0);
  }
}

/** Every metric /metrics answers besides prom-client's defaults, with its help and type. */
export function describeMetrics(metrics: Metrics): void {
  metrics.counter('nightshift_alerts_received_total', 'Alert deliveries by source and result', [
    'source',
    'result',
  ]);
  metrics.gauge('nightshift_incidents_open', 'Incidents not yet resolved, by status', ['status']);
  metrics.gauge('nightshift_jobs', 'Jobs by state', ['state']);
  metrics.gauge(
    'nightshift_outbox_messages',
    'Slack outbox messages not posted: pending (to post or retry) and dead (gave up after the last attempt)',
    ['state'],
  );
  metrics.gauge(
    'nightshift_outbox_oldest_pending_seconds',
    'Seconds the oldest pending Slack outbox message has waited (0 when none)',
  );
  metrics.gauge(
    'nightshift_outbox_stuck',
    `1 while a Slack outbox message has waited more than ${OUTBOX_STUCK_AFTER_S} s to be posted`,
  );
  metrics.gauge('nightshift_store_up', '1 when the database answered the scrape');
  metrics.computed(
    'nightshift_approval_latency_seconds',
    'Seconds from a proposal being posted to its approval, over the last 24 hours',
    'summary',
  );
  metrics.computed(
    'nightshift_alert_to_root_seconds',
    "Seconds from an incident's first alert being received to its root message being posted in Slack",
    'histogram',
  );
  metrics.computed(
    'nightshift_approval_to_run_seconds',
    "Seconds from the approval that completed a proposal's approvals to its run starting",
    'histogram',
  );
  metrics.computed(
    'nightshift_analysis_throughput_bytes_per_second',
    "An analysis job's evidence bytes read per second of the job",
    'histogram',
  );
}
