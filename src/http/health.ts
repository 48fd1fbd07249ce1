import type { Metrics } from '../metrics.ts';
import { OUTBOX_STUCK_AFTER_S } from '../slack/outbox.ts';
import type { Db } from '../store/db.ts';
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
          await deps.db.executeSql('SELECT 1');
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
        const gauges: Array<{ name: string; labels?: Record<string, string>; value: number }> = [];
        try {
          const incidents = await deps.db.executeSql<{ status: string; n: number }>(
            `SELECT status, count(*)::int AS n FROM incidents WHERE status <> 'resolved' GROUP BY status`,
          );
          for (const status of ['open', 'investigating', 'mitigated']) {
            const row = incidents.rows.find((r) => r.status === status);
            gauges.push({ name: 'nightshift_incidents_open', labels: { status }, value: row?.n ?? 0 });
          }
          const jobs = await deps.db.executeSql<{ state: string; n: number }>(
            'SELECT state, count(*)::int AS n FROM jobs GROUP BY state',
          );
          for (const row of jobs.rows)
            gauges.push({ name: 'nightshift_jobs', labels: { state: row.state }, value: row.n });
          // Approval latency: from a proposal being posted to its approval, over the last day.
          const latency = await deps.db.executeSql<{
            n: number;
            total: number | null;
            p50: number | null;
            p99: number | null;
          }>(
            `SELECT count(*)::int AS n, sum(seconds)::float8 AS total,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::float8 AS p50,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds)::float8 AS p99
             FROM (SELECT extract(epoch FROM a.decided_at - p.created_at) AS seconds
                   FROM approvals a JOIN proposals p ON p.id = a.proposal_id
                   WHERE a.decision = 'approved' AND a.decided_at > now() - interval '1 day') latencies`,
          );
          const l = latency.rows[0]!;
          gauges.push(
            { name: 'nightshift_approval_latency_seconds', labels: { quantile: '0.5' }, value: l.p50 ?? 0 },
            { name: 'nightshift_approval_latency_seconds', labels: { quantile: '0.99' }, value: l.p99 ?? 0 },
            { name: 'nightshift_approval_latency_seconds_sum', value: l.total ?? 0 },
            { name: 'nightshift_approval_latency_seconds_count', value: l.n },
          );
          // The Slack outbox: messages still to post (waiting for a retry included), messages given
          // up on after their last attempt, and how long the oldest one still to post has waited.
          const outbox = await deps.db.executeSql<{ pending: number; dead: number; oldest: number | null }>(
            `SELECT count(*) FILTER (WHERE dead_at IS NULL)::int AS pending,
                    count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead,
                    extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL))::float8 AS oldest
             FROM thread_messages WHERE posted_at IS NULL`,
          );
          const o = outbox.rows[0]!;
          gauges.push(
            { name: 'nightshift_outbox_messages', labels: { state: 'pending' }, value: o.pending },
            { name: 'nightshift_outbox_messages', labels: { state: 'dead' }, value: o.dead },
            { name: 'nightshift_outbox_oldest_pending_seconds', value: o.oldest ?? 0 },
            {
              name: 'nightshift_outbox_stuck',
              value: (o.oldest ?? 0) > OUTBOX_STUCK_AFTER_S ? 1 : 0,
            },
          );
          gauges.push({ name: 'nightshift_store_up', value: 1 });
        } catch {
          gauges.push({ name: 'nightshift_store_up', value: 0 });
        }
        const text = deps.metrics.render(gauges);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(text);
      },
    },
  ];
}

export function describeMetrics(metrics: Metrics): void {
  metrics.describe({
    name: 'nightshift_alerts_received_total',
    type: 'counter',
    help: 'Alert deliveries by source and result',
  });
  metrics.describe({
    name: 'nightshift_incidents_open',
    type: 'gauge',
    help: 'Incidents not yet resolved, by status',
  });
  metrics.describe({ name: 'nightshift_jobs', type: 'gauge', help: 'Jobs by state' });
  metrics.describe({
    name: 'nightshift_outbox_messages',
    type: 'gauge',
    help: 'Slack outbox messages not posted: pending (to post or retry) and dead (gave up after the last attempt)',
  });
  metrics.describe({
    name: 'nightshift_outbox_oldest_pending_seconds',
    type: 'gauge',
    help: 'Seconds the oldest pending Slack outbox message has waited (0 when none)',
  });
  metrics.describe({
    name: 'nightshift_outbox_stuck',
    type: 'gauge',
    help: `1 while a Slack outbox message has waited more than ${OUTBOX_STUCK_AFTER_S} s to be posted`,
  });
  metrics.describe({
    name: 'nightshift_store_up',
    type: 'gauge',
    help: '1 when the database answered the scrape',
  });
  metrics.describe({
    name: 'nightshift_approval_latency_seconds',
    type: 'gauge',
    help: 'Seconds from a proposal being posted to its approval, last 24 hours (quantiles; _sum and _count beside)',
  });
}
