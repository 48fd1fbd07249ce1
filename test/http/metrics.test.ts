import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { describeMetrics, healthRoutes } from '../../src/http/health.ts';
import { Metrics } from '../../src/metrics.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { testDatabases } from '../helpers/db.ts';

/** /metrics through prom-client: the default process and Node.js series, and every type right. */

async function scrape(db: Db, metrics: Metrics): Promise<{ type: string; body: string }> {
  const route = healthRoutes({ db, metrics }).find((r) => r.path === '/metrics')!;
  const answer = { type: '', body: '' };
  const res = {
    writeHead: (_status: number, headers: Record<string, string>) => {
      answer.type = headers['content-type'] ?? '';
      return res;
    },
    end: (text: string) => {
      answer.body = text;
    },
  };
  await route.handler({} as IncomingMessage, res as unknown as ServerResponse);
  return answer;
}

/** Each family's TYPE line, by name. */
const types = (text: string) =>
  Object.fromEntries([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));

const sample = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

for (const database of testDatabases()) {
  describe(`/metrics (${database.name})`, () => {
    let db: Db;
    before(async () => {
      db = await database.open();
      await migrate(db);
    });
    after(() => db.close());

    it('has prom-client’s process and Node.js metrics beside nightshift_*, each with a TYPE', async () => {
      const metrics = new Metrics();
      describeMetrics(metrics);
      metrics.inc('nightshift_alerts_received_total', { source: 'generic', result: 'accepted' }, 3);
      const { type, body } = await scrape(db, metrics);
      assert.equal(type, 'text/plain; version=0.0.4; charset=utf-8');
      const typed = types(body);
      for (const name of [
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
        'process_open_fds',
        'nodejs_eventloop_lag_seconds',
        'nodejs_heap_size_used_bytes',
        'nodejs_gc_duration_seconds',
      ])
        assert.ok(typed[name], `${name} is missing`);
      assert.equal(typed.nightshift_alerts_received_total, 'counter');
      assert.equal(typed.nightshift_incidents_open, 'gauge');
      assert.equal(typed.nightshift_store_up, 'gauge');
      assert.equal(typed.nightshift_approval_latency_seconds, 'summary');
      assert.equal(typed.nightshift_alert_to_root_seconds, 'histogram');
      assert.equal(typed.nightshift_approval_to_run_seconds, 'histogram');
      assert.equal(typed.nightshift_analysis_throughput_bytes_per_second, 'histogram');
      assert.equal(sample(body, 'nightshift_alerts_received_total{result="accepted",source="generic"}'), 3);
      assert.equal(sample(body, 'nightshift_store_up'), 1);
      // A summary's quantiles are samples of its own family, not a gauge of the same name.
      assert.match(body, /^nightshift_approval_latency_seconds\{quantile="0\.99"\} 0$/m);
      assert.equal(sample(body, 'nightshift_alert_to_root_seconds_count'), 0);
      assert.equal(sample(body, 'nightshift_alert_to_root_seconds_bucket{le="+Inf"}'), 0);
      // Every sample belongs to a family that has a TYPE (what promtool check metrics asks).
      for (const line of body.split('\n').filter((l) => l && !l.startsWith('#'))) {
        const name = line.split(/[{ ]/)[0]!;
        const family = name.replace(/_(bucket|sum|count)$/, '');
        assert.ok(typed[name] || typed[family], `${name} has no TYPE`);
      }
    });

    it('fills the histograms from the store: alert → root, approval → run, analysis bytes/s', async () => {
      const incident = await db.executeSql<{ id: string }>(
        `INSERT INTO incidents (group_key, host, problem, title, opened_by) VALUES ('web-1:disk', 'web-1', 'disk', 'Disk', 'test') RETURNING id`,
      );
      const id = incident.rows[0]!.id;
      // One transaction, one now(): the 0.2 s between the first alert and the root does not depend
      // on how long the machine took between two statements.
      await db.transaction(async (tx) => {
        await tx.executeSql(
          `INSERT INTO alerts (source, received_at, body, valid, incident_id) VALUES
             ('generic', now() - interval '2 seconds', '{}', true, $1),
             ('generic', now() - interval '1 second', '{}', true, $1)`,
          [id],
        );
        await tx.executeSql(
          `INSERT INTO thread_messages (incident_id, dedup_key, role, channel, body, posted_at)
           VALUES ($1, 'root', 'root', 'C1', '{}', now() - interval '1.8 seconds')`,
          [id],
        );
      });
      const proposal = await db.executeSql<{ id: string }>(
        `INSERT INTO proposals (incident_id, kind, target, text, sha256, proposed_by, expires_at, created_at)
         VALUES ($1, 'sql', 'app', 'SELECT 1', 'h', 'agent', now() + interval '1 hour', now() - interval '90 seconds') RETURNING id`,
        [id],
      );
      await db.executeSql(
        `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via) VALUES ($1, 'h', 'approved', 'U1', 'button')`,
        [proposal.rows[0]!.id],
      );
      await db.executeSql(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [proposal.rows[0]!.id]);
      await db.executeSql('INSERT INTO runs (proposal_id, sha256) VALUES ($1, $2)', [
        proposal.rows[0]!.id,
        'h',
      ]);
      await db.executeSql(
        `INSERT INTO jobs (incident_id, kind, state, started_at, finished_at, result)
         VALUES ($1, 'analyze-evidence', 'succeeded', now() - interval '2 seconds', now(), '{"bytes": 600000000}')`,
        [id],
      );
      const metrics = new Metrics({ defaultMetrics: false });
      describeMetrics(metrics);
      const { body } = await scrape(db, metrics);
      // The first alert came 2 s ago and the root was posted 0.2 s after it.
      assert.equal(sample(body, 'nightshift_alert_to_root_seconds_count'), 1);
      assert.equal(sample(body, 'nightshift_alert_to_root_seconds_bucket{le="0.1"}'), 0);
      assert.equal(sample(body, 'nightshift_alert_to_root_seconds_bucket{le="0.25"}'), 1);
      assert.equal(sample(body, 'nightshift_alert_to_root_seconds_bucket{le="+Inf"}'), 1);
      assert.ok(Math.abs(sample(body, 'nightshift_alert_to_root_seconds_sum')! - 0.2) < 0.01);
      // The run started right after the approval, on the database's clock.
      assert.equal(sample(body, 'nightshift_approval_to_run_seconds_count'), 1);
      assert.equal(sample(body, 'nightshift_approval_to_run_seconds_bucket{le="1"}'), 1);
      // 600 MB in 2 s: 300 MB/s.
      assert.equal(sample(body, 'nightshift_analysis_throughput_bytes_per_second_count'), 1);
      assert.equal(sample(body, 'nightshift_analysis_throughput_bytes_per_second_bucket{le="250000000"}'), 0);
      assert.equal(sample(body, 'nightshift_analysis_throughput_bytes_per_second_bucket{le="500000000"}'), 1);
      assert.equal(sample(body, 'nightshift_approval_latency_seconds_count'), 1);
      // Buckets are cumulative and end at the count.
      for (const family of ['nightshift_alert_to_root_seconds', 'nightshift_approval_to_run_seconds']) {
        const counts = [...body.matchAll(new RegExp(`^${family}_bucket\\{le="[^"]+"\\} (\\d+)$`, 'gm'))].map(
          (m) => Number(m[1]),
        );
        assert.deepEqual(
          counts,
          [...counts].sort((a, b) => a - b),
        );
        assert.equal(counts.at(-1), sample(body, `${family}_count`));
      }
    });

    it('says the store is down and still answers', async () => {
      const metrics = new Metrics({ defaultMetrics: false });
      describeMetrics(metrics);
      const broken = {
        ...db,
        executeSql: () => Promise.reject(new Error('down')),
      } as unknown as Db;
      const { body } = await scrape(broken, metrics);
      assert.equal(sample(body, 'nightshift_store_up'), 0);
    });
  });
}
