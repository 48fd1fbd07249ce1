import type { Metrics } from '../metrics.ts';
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
    name: 'nightshift_store_up',
    type: 'gauge',
    help: '1 when the database answered the scrape',
  });
}
