/**
 * The bot's speed and memory, measured (not asserted): `npm run bench:bot`.
 *
 * 1. Alert received → root message posted in Slack (the local fake), one host at a time: p50 and
 *    p99. Goal: p99 under 300 ms.
 * 2. A burst of 10,000 alerts over 200 hosts, 50 deliveries in flight: exactly 200 incidents and
 *    200 root messages, no message posted twice, how long the alerts took to be accepted and the
 *    outbox to drain (every root and reply posted).
 * 3. The event loop's delay while 8 dumps are analysed by the analysis job: the bot must keep
 *    acking Slack within 3 s, so the delay should stay far under that.
 *
 * Each store runs in a process of its own, started by this one: the embedded store (PGlite, in a
 * new data directory, so its first start is measured too), then PostgreSQL when DATABASE_URL is
 * set. The summary puts them side by side with each process's peak RSS (VmHWM: the bot, the fake
 * Slack and the load, as they share the process; PostgreSQL's server is not in it).
 * BENCH_BOT_BEFORE=1 runs the embedded store a second time with PGlite's own settings and initdb
 * in the process (as before issue 13 §4), for a before/after in one run. BENCH_BOT_STORE runs one
 * store in this process (pglite, pglite-before or postgres).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { PGlite } from '@electric-sql/pglite';
import { loadConfig } from '../src/config/env.ts';
import { QUEUES } from '../src/jobs/queues.ts';
import { createLogger } from '../src/log.ts';
import { startBot } from '../src/main.ts';
import { openPostgres } from '../src/store/adapters/pg.ts';
import { fromPglite, openPglite } from '../src/store/adapters/pglite.ts';
import { FAKE_IDS, startFakeSlack } from '../test/helpers/fake-slack.ts';

type StoreName = 'pglite' | 'pglite-before' | 'postgres';

interface Summary {
  store: StoreName;
  peakRssMiB: number;
  p99Ms: number;
  acceptedS: number;
  drainedS: number;
  threads: number;
  duplicates: number;
}

/** This process's peak resident set size, in MiB (VmHWM; maxRSS where /proc is missing). */
function peakRssMiB(): number {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib) return Number(kib) / 1024;
  } catch {
    // Not Linux: fall through.
  }
  return process.resourceUsage().maxRSS / 1024;
}

const only = process.env.BENCH_BOT_STORE as StoreName | undefined;
if (only === undefined) {
  const stores: StoreName[] = ['pglite'];
  if (process.env.BENCH_BOT_BEFORE === '1') stores.push('pglite-before');
  if (process.env.DATABASE_URL) stores.push('postgres');
  const summaries: Summary[] = [];
  for (const store of stores) {
    console.log(`\n== ${store}`);
    const child = spawn(process.execPath, [new URL(import.meta.url).pathname], {
      env: { ...process.env, BENCH_BOT_STORE: store },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      process.stdout.write(chunk.replace(/^summary .*\n/m, ''));
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const line = /^summary (.*)$/m.exec(out)?.[1];
    if (code !== 0 || !line) {
      console.log(`FAIL  ${store}: the bench exited with ${code}`);
      process.exitCode = 1;
      continue;
    }
    summaries.push(JSON.parse(line) as Summary);
  }
  console.log('\n== side by side');
  console.log('store          peak RSS   p99      accepted   drained   threads  duplicates');
  for (const s of summaries)
    console.log(
      `${s.store.padEnd(14)} ${`${s.peakRssMiB.toFixed(0)} MiB`.padEnd(10)} ${`${s.p99Ms.toFixed(0)} ms`.padEnd(8)} ${`${s.acceptedS.toFixed(1)} s`.padEnd(10)} ${`${s.drainedS.toFixed(1)} s`.padEnd(9)} ${String(s.threads).padEnd(8)} ${s.duplicates}`,
    );
  process.exit();
}

const TOKEN = 'bench-alert-token-0123456789';
const SECRET = '0123456789abcdef0123456789abcdef';
const schema = `bench_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'nightshift-bench-bot-'));

/** PGlite as the adapter opened it before issue 13 §4: its own settings, initdb in this process. */
async function openPgliteBefore(dataDir: string, name: string) {
  const pglite = new PGlite(dataDir);
  await pglite.waitReady;
  return fromPglite(pglite, name, () => pglite.close());
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

const slack = await startFakeSlack();
const db =
  only === 'postgres'
    ? await openPostgres(process.env.DATABASE_URL!, schema)
    : only === 'pglite-before'
      ? await openPgliteBefore(join(dir, 'pglite'), schema)
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

let summary: Omit<Summary, 'peakRssMiB'> | undefined;
try {
  console.log(`store: ${db.kind}; peak RSS after start ${peakRssMiB().toFixed(0)} MiB`);
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
  // Drained: every root and reply of the burst posted (the bot kicks the outbox on each alert).
  const pending = async () =>
    (
      await db.executeSql<{ n: number }>(
        `SELECT count(*)::int AS n FROM thread_messages m JOIN incidents i ON i.id = m.incident_id
         WHERE i.host LIKE 'burst-%' AND m.posted_at IS NULL AND m.dead_at IS NULL`,
      )
    ).rows[0]!.n;
  const deadline = Date.now() + 600_000;
  while ((await pending()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const drained = performance.now() - started;
  const left = await pending();
  const { rows } = await db.executeSql<{ n: number }>(
    `SELECT count(*)::int AS n FROM incidents WHERE host LIKE 'burst-%'`,
  );
  const threads = roots().length - rootsBefore;
  // A message posted twice: two messages in Slack with the outbox's tag for the same key.
  const keys = new Map<string, number>();
  for (const m of slack.messages.get(FAKE_IDS.channel) ?? []) {
    const key = (m.metadata as { event_payload?: { key?: string } } | undefined)?.event_payload?.key;
    if (key) keys.set(key, (keys.get(key) ?? 0) + 1);
  }
  const duplicates = [...keys.values()].filter((n) => n > 1).length;
  console.log(
    `burst: ${total} alerts over 200 hosts accepted in ${(accepted / 1000).toFixed(1)} s (${Math.round(total / (accepted / 1000))}/s), statuses ${JSON.stringify(Object.fromEntries(statuses))}; outbox drained ${(drained / 1000).toFixed(1)} s after the first alert (${left} left); incidents ${rows[0]!.n}, root messages ${threads}, posted twice ${duplicates}; peak RSS so far ${peakRssMiB().toFixed(0)} MiB`,
  );
  console.log(`${rows[0]!.n === 200 && threads === 200 ? 'PASS' : 'FAIL'}  exactly 200 threads`);
  console.log(`${duplicates === 0 && left === 0 ? 'PASS' : 'FAIL'}  every message posted, none twice`);
  summary = {
    store: only!,
    p99Ms: p99,
    acceptedS: accepted / 1000,
    drainedS: drained / 1000,
    threads,
    duplicates,
  };

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
console.log(`peak RSS ${peakRssMiB().toFixed(0)} MiB`);
if (summary) console.log(`summary ${JSON.stringify({ ...summary, peakRssMiB: peakRssMiB() })}`);
