/**
 * The bot alone, for bench:bot: started by bot.bench.ts in a process of its own, so what that
 * process measures (peak RSS) is the bot's, not the fake Slack's or the load's, which stay in the
 * bench's process. It opens the store named by BENCH_BOT_STORE as `nightshift serve` does, starts
 * the bot against the fake Slack at SLACK_API_URL, and answers the bench over IPC:
 * - `{ type: 'query', sql }`: rows, from the bot's own store (the only process that may open a
 *   PGlite directory);
 * - `{ type: 'analyze', paths }`: sends an analysis job and waits for it, measuring the event
 *   loop's delay meanwhile; answers with that delay and the job's result (the analysis process's
 *   peak RSS);
 * - `{ type: 'close' }`: stops the bot and exits.
 * Stores: `pglite` (as serve opens it), `pglite-tierup` (the same without
 * keepWasmOnBaselineCompiler, V8's optimizing compiler left on), `pglite-before` (PGlite's own
 * settings and initdb in this process, as before issue 13 §4), `postgres` (DATABASE_URL).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { PGlite } from '@electric-sql/pglite';
import { loadConfig } from '../src/config/env.ts';
import { QUEUES } from '../src/jobs/queues.ts';
import { createLogger } from '../src/log.ts';
import { startBot } from '../src/main.ts';
import { openPostgres } from '../src/store/adapters/pg.ts';
import { fromPglite, openPglite } from '../src/store/adapters/pglite.ts';
import { keepWasmOnBaselineCompiler } from '../src/store/adapters/pglite-compiler.ts';

export type StoreName = 'pglite' | 'pglite-tierup' | 'pglite-before' | 'postgres';

export type RequestBody =
  | { type: 'query'; sql: string }
  | { type: 'analyze'; paths: string[] }
  | { type: 'close' };
export type Request = RequestBody & { id: number };

const env = process.env;
const store = env.BENCH_BOT_STORE as StoreName;
const dataDir = env.BENCH_BOT_DATA_DIR!;
const schema = `bench_${process.pid}`;

if (store === 'pglite') keepWasmOnBaselineCompiler();
const db =
  store === 'postgres'
    ? await openPostgres(env.DATABASE_URL!, schema)
    : store === 'pglite-before'
      ? await (async () => {
          const pglite = new PGlite(dataDir);
          await pglite.waitReady;
          return fromPglite(pglite, schema, () => pglite.close());
        })()
      : await openPglite(dataDir, schema);
const bot = await startBot({
  config: {
    ...loadConfig({
      SLACK_BOT_TOKEN: env.BENCH_SLACK_BOT_TOKEN,
      SLACK_SIGNING_SECRET: env.BENCH_SLACK_SIGNING_SECRET,
      SLACK_API_URL: env.BENCH_SLACK_API_URL,
      INCIDENT_CHANNEL: env.BENCH_INCIDENT_CHANNEL,
      ALERT_WEBHOOK_TOKEN: env.BENCH_ALERT_TOKEN,
    }),
    PORT: 0,
  },
  db,
  log: createLogger({ level: 'silent' }),
});

const answer = (message: object) =>
  new Promise<void>((resolve) => process.send!(message, undefined, {}, () => resolve()));

async function analyze(paths: string[]) {
  const incident = await db.executeSql<{ id: string }>('SELECT id FROM incidents ORDER BY id LIMIT 1');
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const started = performance.now();
  const jobId = await bot.boss.send(QUEUES.analyzeEvidence.name, {
    incidentId: Number(incident.rows[0]!.id),
    paths,
  });
  let row: { state: string; result: unknown; error: string | null } | undefined;
  for (;;) {
    const r = await db.executeSql<{ state: string; result: unknown; error: string | null }>(
      'SELECT state, result, error FROM jobs WHERE queue_job_id = $1',
      [jobId],
    );
    row = r.rows[0];
    // The job's result (the analysis process's peak RSS) is written just after it is marked done.
    if (row && (row.state === 'failed' || (row.state === 'succeeded' && row.result !== null))) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  histogram.disable();
  const result = (typeof row.result === 'string' ? JSON.parse(row.result) : row.result) as {
    peakRssBytes?: number;
  } | null;
  return {
    state: row.state,
    error: row.error,
    seconds: (performance.now() - started) / 1000,
    delayMs: {
      p50: histogram.percentile(50) / 1e6,
      p99: histogram.percentile(99) / 1e6,
      max: histogram.max / 1e6,
    },
    analysisPeakRssMiB: (result?.peakRssBytes ?? 0) / 2 ** 20,
  };
}

process.on('message', (request: Request) => {
  void (async () => {
    try {
      if (request.type === 'query') {
        const { rows } = await db.executeSql(request.sql);
        await answer({ id: request.id, rows });
      } else if (request.type === 'analyze') {
        await answer({ id: request.id, ...(await analyze(request.paths)) });
      } else {
        await bot.close();
        if (db.kind === 'postgres')
          await db
            .executeSql(`DROP SCHEMA ${schema} CASCADE; DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)
            .catch(() => {});
        await db.close();
        await answer({ id: request.id });
        process.exit();
      }
    } catch (error) {
      await answer({ id: request.id, error: (error as Error).message });
    }
  })();
});
await answer({ type: 'ready', port: bot.port, kind: db.kind });
