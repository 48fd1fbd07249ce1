/**
 * The bot's speed, measured (not asserted): `npm run bench:bot`.
 *
 * 1. Alert received → root message posted in Slack (the local fake), one host at a time: p50 and
 *    p99. Goal: p99 under 300 ms.
 * 2. A burst of 10,000 alerts over 200 hosts, 50 deliveries in flight: exactly 200 incidents and
 *    200 root messages, and how long it took.
 * 3. The event loop's delay while 8 dumps are analysed by the analysis job: the bot must keep
 *    acking Slack within 3 s, so the delay should stay far under that.
 *
 * Runs on the embedded store, or on PostgreSQL when DATABASE_URL is set.
 */
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig } from '../src/config/env.ts';
import { QUEUES } from '../src/jobs/queues.ts';
import { createLogger } from '../src/log.ts';
import { startBot } from '../src/main.ts';
import { openPostgres } from '../src/store/adapters/pg.ts';
import { openPglite } from '../src/store/adapters/pglite.ts';
import { FAKE_IDS, startFakeSlack } from '../test/helpers/fake-slack.ts';

const TOKEN = 'bench-alert-token-0123456789';
const SECRET = '0123456789abcdef0123456789abcdef';
const schema = `bench_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'nightshift-bench-bot-'));

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

const slack = await startFakeSlack();
const db = process.env.DATABASE_URL
  ? await openPostgres(process.env.DATABASE_URL, schema)
  : await openPglite(join(dir, 'pglite'), schema);
const bot = await startBot({
  config: {
    ...loadConfig({
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: slack.apiUrl,
      INCIDENT_CHANNEL: FAKE_IDS.channel,
      ALERT_WEBHOOK_TOKEN: TOKEN,
    }),
    PORT: 0,
  },
  db,
  log: createLogger({ level: 'silent' }),
});
const post = (body: object) =>
  fetch(`http://127.0.0.1:${bot.port}/alerts/generic`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { authorization: `Bearer ${TOKEN}` },
  });
const roots = () =>
  (slack.messages.get(FAKE_IDS.channel) ?? []).filter(
    (m) => m.thread_ts === undefined || m.thread_ts === m.ts,
  );
const rootFor = (host: string) => roots().find((m) => (m.text ?? '').includes(` on ${host} `));

try {
  console.log(`store: ${db.kind}`);
  // 1. Latency, one alert at a time.
  const latencies: number[] = [];
  for (let i = 0; i < 100; i++) {
    const host = `lat-${i}`;
    const started = performance.now();
    const res = await post({ host, name: 'DiskFull', disk: { mount: '/', usedPercent: 97 } });
    if (res.status !== 202) throw new Error(`alert answered ${res.status}`);
    while (!rootFor(host)) await new Promise((r) => setImmediate(r));
    latencies.push(performance.now() - started);
  }
  const p99 = percentile(latencies, 99);
  console.log(
    `alert → root posted: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms (100 alerts)`,
  );
  console.log(`${p99 < 300 ? 'PASS' : 'FAIL'}  p99 under 300 ms`);

  // 2. Burst: 10,000 alerts over 200 hosts.
  const rootsBefore = roots().length;
  const started = performance.now();
  const total = 10_000;
  let next = 0;
  const statuses = new Map<number, number>();
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < total) {
        const i = next++;
        const res = await post({
          host: `burst-${i % 200}`,
          name: 'DiskFull',
          id: `a${i}`,
          disk: { mount: '/', usedPercent: 95 },
        });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        await res.arrayBuffer();
      }
    }),
  );
  const accepted = performance.now() - started;
  const deadline = Date.now() + 120_000;
  while (roots().length - rootsBefore < 200 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const { rows } = await db.executeSql<{ n: number }>(
    `SELECT count(*)::int AS n FROM incidents WHERE host LIKE 'burst-%'`,
  );
  const threads = roots().length - rootsBefore;
  console.log(
    `burst: ${total} alerts over 200 hosts accepted in ${(accepted / 1000).toFixed(1)} s (${Math.round(total / (accepted / 1000))}/s), statuses ${JSON.stringify(Object.fromEntries(statuses))}; incidents ${rows[0]!.n}, root messages ${threads}`,
  );
  console.log(`${rows[0]!.n === 200 && threads === 200 ? 'PASS' : 'FAIL'}  exactly 200 threads`);

  // 3. Event-loop delay while the analysis job reads 8 dumps.
  const evidence = join(dir, 'evidence');
  const examples = new URL('../examples/', import.meta.url).pathname;
  const cores = readdirSync(examples).filter((f) => f.startsWith('web-'));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(evidence);
  for (let i = 0; i < 8; i++)
    copyFileSync(join(examples, cores[i % cores.length]!), join(evidence, `${i}-${cores[i % cores.length]}`));
  const incident = await db.executeSql<{ id: string }>(`SELECT id FROM incidents ORDER BY id LIMIT 1`);
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const jobId = await bot.boss.send(QUEUES.analyzeEvidence.name, {
    incidentId: Number(incident.rows[0]!.id),
    paths: [evidence],
  });
  const jobStarted = performance.now();
  for (;;) {
    const r = await db.executeSql<{ state: string }>('SELECT state FROM jobs WHERE queue_job_id = $1', [
      jobId,
    ]);
    if (r.rows[0] && r.rows[0].state !== 'running') break;
    await new Promise((res) => setTimeout(res, 20));
  }
  histogram.disable();
  const ms = (ns: number) => (ns / 1e6).toFixed(1);
  console.log(
    `event loop while analysing 8 dumps (${((performance.now() - jobStarted) / 1000).toFixed(1)} s): delay p50 ${ms(histogram.percentile(50))} ms, p99 ${ms(histogram.percentile(99))} ms, max ${ms(histogram.max)} ms`,
  );
  console.log(
    `${histogram.max / 1e6 < 500 ? 'PASS' : 'FAIL'}  event loop never blocked for 500 ms (Slack allows 3 s)`,
  );
} finally {
  await bot.close();
  if (db.kind === 'postgres')
    await db
      .executeSql(`DROP SCHEMA ${schema} CASCADE; DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)
      .catch(() => {});
  await db.close();
  await slack.close();
  rmSync(dir, { recursive: true, force: true });
}
