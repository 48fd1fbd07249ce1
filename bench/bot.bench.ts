/**
 * The bot's speed and memory, measured (not asserted): `npm run bench:bot`.
 *
 * 1. Alert received → root message posted in Slack (the local fake), one host at a time: p50 and
 *    p99. Goal: p99 under 300 ms.
 * 2. A burst of 10,000 alerts over 200 hosts, 50 deliveries in flight: exactly 200 incidents and
 *    200 root messages, no message posted twice, how long the alerts took to be accepted and the
 *    outbox to drain (every root and reply posted).
 * 3. The event loop's delay while 8 dumps are analysed by the analysis job: the bot must keep
 *    acking Slack within 3 s, so the delay should stay far under that. The analysis runs in a
 *    process of its own; its peak RSS is reported apart.
 *
 * The bot runs in a process of its own for each store (bench/bot-process.ts), opened as `nightshift
 * serve` opens it; the fake Slack and the load generator stay in this process. Peak RSS is the bot
 * process's own (VmHWM, read from /proc/<pid>/status): after the burst, and after the analysis
 * (which runs in the bot's child, not in the bot). PostgreSQL's server is not in it. Stores, side
 * by side: the embedded store (PGlite, in a new data directory, so its first start is measured
 * too), then PostgreSQL when DATABASE_URL is set. BENCH_BOT_BEFORE=1 adds PGlite with V8's
 * WebAssembly optimizing compiler left on (`pglite-tierup`) and PGlite as opened before issue 13
 * §4 (`pglite-before`: its own settings, initdb in the process). BENCH_BOT_STORES=a,b names the
 * stores to run instead.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAKE_IDS, startFakeSlack } from '../test/helpers/fake-slack.ts';
import type { RequestBody, StoreName } from './bot-process.ts';

interface Summary {
  store: StoreName;
  burstPeakRssMiB: number;
  peakRssMiB: number;
  analysisPeakRssMiB: number;
  p99Ms: number;
  acceptedS: number;
  drainedS: number;
  threads: number;
  duplicates: number;
}

const TOKEN = 'bench-alert-token-0123456789';
const SECRET = '0123456789abcdef0123456789abcdef';

/** A process's peak resident set size, in MiB (VmHWM). */
function peakRssMiB(pid: number): number {
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) / 1024;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

/** The bot's process, and a way to ask it something over IPC. */
async function startBotProcess(
  store: StoreName,
  dataDir: string,
  slack: { botToken: string; apiUrl: string },
) {
  const child: ChildProcess = fork(new URL('./bot-process.ts', import.meta.url).pathname, [], {
    env: {
      ...process.env,
      BENCH_BOT_STORE: store,
      BENCH_BOT_DATA_DIR: dataDir,
      BENCH_SLACK_BOT_TOKEN: slack.botToken,
      BENCH_SLACK_SIGNING_SECRET: SECRET,
      BENCH_SLACK_API_URL: slack.apiUrl,
      BENCH_INCIDENT_CHANNEL: FAKE_IDS.channel,
      BENCH_ALERT_TOKEN: TOKEN,
    },
    // The heap flags bin/nightshift gives serve.
    execArgv: ['--max-semi-space-size=2'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map<number, (reply: Record<string, unknown>) => void>();
  let ready: (reply: { port: number; kind: string }) => void = () => {};
  const started = new Promise<{ port: number; kind: string }>((resolve, reject) => {
    ready = resolve;
    child.once('exit', (code) => reject(new Error(`the bot exited with ${code} before it was ready`)));
  });
  child.on('message', (message: Record<string, unknown>) => {
    if (message.type === 'ready') ready(message as { port: number; kind: string });
    else waiting.get(message.id as number)?.(message);
  });
  let nextId = 1;
  const ask = <T = Record<string, unknown>>(request: RequestBody): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, (reply) => {
        waiting.delete(id);
        if (typeof reply.error === 'string' && reply.type === undefined && !('state' in reply))
          reject(new Error(reply.error));
        else resolve(reply as T);
      });
      child.send({ ...request, id });
    });
  const { port, kind } = await started;
  return { child, port, kind, ask };
}

async function benchStore(store: StoreName): Promise<Summary> {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-bench-bot-'));
  const slack = await startFakeSlack();
  const bot = await startBotProcess(store, join(dir, 'pglite'), slack);
  const pid = bot.child.pid!;
  try {
    const post = (body: object) =>
      fetch(`http://127.0.0.1:${bot.port}/alerts/generic`, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { authorization: `Bearer ${TOKEN}` },
      });
    // The incidents' roots: top-level messages but the one fleet message (several hosts at once).
    const roots = () =>
      (slack.messages.get(FAKE_IDS.channel) ?? []).filter(
        (m) => (m.thread_ts === undefined || m.thread_ts === m.ts) && !/Fleet:/.test(m.text ?? ''),
      );
    const rootFor = (host: string) => roots().find((m) => (m.text ?? '').includes(` on ${host} `));
    const count = async (sql: string) =>
      (await bot.ask<{ rows: Array<{ n: number }> }>({ type: 'query', sql })).rows[0]!.n;

    console.log(
      `store: ${bot.kind} (bot pid ${pid}); its peak RSS after start ${peakRssMiB(pid).toFixed(0)} MiB`,
    );
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
    const pending = () =>
      count(`SELECT count(*)::int AS n FROM thread_messages m JOIN incidents i ON i.id = m.incident_id
             WHERE i.host LIKE 'burst-%' AND m.posted_at IS NULL AND m.dead_at IS NULL`);
    const deadline = Date.now() + 600_000;
    while ((await pending()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const drained = performance.now() - started;
    const left = await pending();
    const incidents = await count(`SELECT count(*)::int AS n FROM incidents WHERE host LIKE 'burst-%'`);
    const threads = roots().length - rootsBefore;
    // A message posted twice: two messages in Slack with the outbox's tag for the same key.
    const keys = new Map<string, number>();
    for (const m of slack.messages.get(FAKE_IDS.channel) ?? []) {
      const key = (m.metadata as { event_payload?: { key?: string } } | undefined)?.event_payload?.key;
      if (key) keys.set(key, (keys.get(key) ?? 0) + 1);
    }
    const duplicates = [...keys.values()].filter((n) => n > 1).length;
    const burstPeak = peakRssMiB(pid);
    console.log(
      `burst: ${total} alerts over 200 hosts accepted in ${(accepted / 1000).toFixed(1)} s (${Math.round(total / (accepted / 1000))}/s), statuses ${JSON.stringify(Object.fromEntries(statuses))}; outbox drained ${(drained / 1000).toFixed(1)} s after the first alert (${left} left); incidents ${incidents}, root messages ${threads}, posted twice ${duplicates}; the bot's peak RSS so far ${burstPeak.toFixed(0)} MiB`,
    );
    console.log(`${incidents === 200 && threads === 200 ? 'PASS' : 'FAIL'}  exactly 200 threads`);
    console.log(`${duplicates === 0 && left === 0 ? 'PASS' : 'FAIL'}  every message posted, none twice`);

    // 3. Event-loop delay while the analysis job reads 8 dumps (in its own process).
    const evidence = join(dir, 'evidence');
    const examples = new URL('../examples/', import.meta.url).pathname;
    const cores = readdirSync(examples).filter((f) => f.startsWith('web-'));
    mkdirSync(evidence);
    for (let i = 0; i < 8; i++)
      copyFileSync(
        join(examples, cores[i % cores.length]!),
        join(evidence, `${i}-${cores[i % cores.length]}`),
      );
    const job = await bot.ask<{
      state: string;
      error: string | null;
      seconds: number;
      delayMs: { p50: number; p99: number; max: number };
      analysisPeakRssMiB: number;
    }>({ type: 'analyze', paths: [evidence] });
    console.log(
      `analysis of 8 dumps: ${job.state}${job.error ? ` (${job.error})` : ''} in ${job.seconds.toFixed(1)} s, its process's peak RSS ${job.analysisPeakRssMiB.toFixed(0)} MiB; the bot's event loop meanwhile: delay p50 ${job.delayMs.p50.toFixed(1)} ms, p99 ${job.delayMs.p99.toFixed(1)} ms, max ${job.delayMs.max.toFixed(1)} ms`,
    );
    console.log(
      `${job.delayMs.max < 500 ? 'PASS' : 'FAIL'}  event loop never blocked for 500 ms (Slack allows 3 s)`,
    );
    const peak = peakRssMiB(pid);
    console.log(`the bot's peak RSS ${peak.toFixed(0)} MiB`);
    return {
      store,
      burstPeakRssMiB: burstPeak,
      peakRssMiB: peak,
      analysisPeakRssMiB: job.analysisPeakRssMiB,
      p99Ms: p99,
      acceptedS: accepted / 1000,
      drainedS: drained / 1000,
      threads,
      duplicates,
    };
  } finally {
    await bot.ask({ type: 'close' }).catch(() => {});
    if (bot.child.exitCode === null) await new Promise((resolve) => bot.child.once('exit', resolve));
    await slack.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const stores: StoreName[] = process.env.BENCH_BOT_STORES
  ? (process.env.BENCH_BOT_STORES.split(',') as StoreName[])
  : [
      'pglite',
      ...(process.env.BENCH_BOT_BEFORE === '1' ? (['pglite-tierup', 'pglite-before'] as const) : []),
      ...(process.env.DATABASE_URL ? (['postgres'] as const) : []),
    ];
const summaries: Summary[] = [];
for (const store of stores) {
  console.log(`\n== ${store}`);
  try {
    summaries.push(await benchStore(store));
  } catch (error) {
    console.log(`FAIL  ${store}: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
console.log("\n== side by side (peak RSS: the bot's process alone, after the burst and at the end)");
console.log(
  'store          burst peak  peak       analysis   p99      accepted   drained   threads  duplicates',
);
for (const s of summaries)
  console.log(
    `${s.store.padEnd(14)} ${`${s.burstPeakRssMiB.toFixed(0)} MiB`.padEnd(11)} ${`${s.peakRssMiB.toFixed(0)} MiB`.padEnd(10)} ${`${s.analysisPeakRssMiB.toFixed(0)} MiB`.padEnd(10)} ${`${s.p99Ms.toFixed(0)} ms`.padEnd(8)} ${`${s.acceptedS.toFixed(1)} s`.padEnd(10)} ${`${s.drainedS.toFixed(1)} s`.padEnd(9)} ${String(s.threads).padEnd(8)} ${s.duplicates}`,
  );
process.exit();
