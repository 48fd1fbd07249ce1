/**
 * The approval gate's speed, measured (not asserted): `npm run bench:approvals`.
 *
 * Each round goes through the real bot (Bolt over HTTP against the local fake Slack, the job
 * queue, the agent against the local fake Anthropic):
 * an alert opens an incident; an analysis posts its findings to the thread; the agent's turn
 * (the fake model answers with a propose_script tool_use) posts a proposal; an approver clicks
 * Approve (a signed block_actions request); the run starts, ends, and the agent reads its result
 * (the fake model ends its turn). Rounds run one after the other.
 *
 * (a) Approval click → run started: from the click's HTTP request to the `run.started` audit
 *     row (written in the transaction that claims the run), and to the moment the approved
 *     script's own process started (it prints `date +%s%N` in the sandbox). Goal: p99 under 500 ms.
 * (b) A finding posted → the agent's proposal posted: from the first finding's chat.postMessage
 *     arriving at Slack to the proposal's, less the fake model's own time on the requests made
 *     in between. Goal: p99 under 200 ms.
 *
 * BENCH_APPROVALS_ROUNDS sets the number of rounds (default 100). Runs on the embedded store, or
 * on PostgreSQL when DATABASE_URL is set.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/env.ts';
import { QUEUES } from '../src/jobs/queues.ts';
import { createLogger } from '../src/log.ts';
import { startBot } from '../src/main.ts';
import { APPROVE_ACTION } from '../src/slack/blocks/proposal.ts';
import { openPostgres } from '../src/store/adapters/pg.ts';
import { openPglite } from '../src/store/adapters/pglite.ts';
import {
  endTurn,
  type MessagesRequest,
  startFakeAnthropic,
  toolUse,
} from '../test/helpers/fake-anthropic.ts';
import { blockActionsBody, FAKE_IDS, signedRequest, startFakeSlack } from '../test/helpers/fake-slack.ts';
import { until } from '../test/helpers/wait.ts';

const TOKEN = 'bench-alert-token-0123456789';
const SECRET = '0123456789abcdef0123456789abcdef';
const APPROVER = 'U0APPROVER';
const CHANNEL = FAKE_IDS.channel;
const ROUNDS = Number(process.env.BENCH_APPROVALS_ROUNDS ?? 100);
const schema = `bench_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'nightshift-bench-approvals-'));

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const summary = (values: number[]) =>
  `p50 ${percentile(values, 50).toFixed(1)} ms, p95 ${percentile(values, 95).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms, max ${Math.max(...values).toFixed(1)} ms`;
/** Wall-clock milliseconds with sub-millisecond resolution, comparable with the database's now(). */
const wallMs = () => performance.timeOrigin + performance.now();

// One small real core (SIGABRT): its analysis posts two findings.
const evidence = join(dir, 'evidence-in', 'crash-abort.core.gz');
mkdirSync(join(dir, 'evidence-in'));
copyFileSync(new URL('../examples/crash-abort.core.30457.gz', import.meta.url).pathname, evidence);

const slack = await startFakeSlack();
const model = await startFakeAnthropic();
const userText = (request: MessagesRequest) => {
  const last = request.messages.at(-1)!;
  return typeof last.content === 'string'
    ? last.content
    : last.content.map((b) => (b.type === 'text' ? b.text : '')).join('\n');
};
// The model proposes a script when told of new findings, and ends its turn when told of a run.
const think = (request: MessagesRequest) =>
  / ran: /.test(userText(request))
    ? endTurn('The script ran; nothing more to propose.')
    : toolUse(
        'propose_script',
        {
          where: 'evidence',
          text: `date +%s%N # round ${/Incident #(\d+)/.exec(userText(request))?.[1] ?? ''}`,
          why: 'When does an approved script start?',
          expects: 'The time, in nanoseconds since the epoch',
        },
        'I will time the sandbox.',
      );
model.reply(...Array.from({ length: ROUNDS * 4 + 10 }, () => think));

const db = process.env.DATABASE_URL
  ? await openPostgres(process.env.DATABASE_URL, schema)
  : await openPglite(join(dir, 'pglite'), schema);
const bot = await startBot({
  config: {
    ...loadConfig({
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: slack.apiUrl,
      INCIDENT_CHANNEL: CHANNEL,
      ALERT_WEBHOOK_TOKEN: TOKEN,
      NIGHTSHIFT_APPROVERS: APPROVER,
      NIGHTSHIFT_DATA_DIR: join(dir, 'data'),
      ANTHROPIC_API_KEY: model.apiKey,
      ANTHROPIC_BASE_URL: model.baseURL,
    }),
    PORT: 0,
  },
  db,
  log: createLogger({ level: process.env.BENCH_LOG ?? 'silent' }),
});

/** When Slack received the chat.postMessage that created the message `ts` (Date.now()). */
const postedAt = (ts: string) =>
  slack.callsTo('chat.postMessage').find((c) => (c.response as { ts?: string } | undefined)?.ts === ts)?.at;
const rows = async <T>(text: string, values: unknown[]) => (await db.executeSql<T>(text, values)).rows;
/** The message ts of each of an incident's posted outbox messages whose key matches `like`. */
const postedTs = async (incidentId: number, like: string) =>
  (
    await rows<{ ts: string }>(
      `SELECT ts FROM thread_messages WHERE incident_id = $1 AND dedup_key LIKE $2 AND ts IS NOT NULL ORDER BY id`,
      [incidentId, like],
    )
  ).map((r) => r.ts);
const auditAt = async (action: string, proposalId: number) =>
  (
    await rows<{ ms: number | string }>(
      `SELECT extract(epoch FROM at)::float8 * 1000 AS ms FROM audit_log
       WHERE action = $1 AND (subject->>'proposal')::bigint = $2 ORDER BY id LIMIT 1`,
      [action, proposalId],
    )
  ).map((r) => Number(r.ms))[0];

const clickToRun: number[] = [];
const clickToApproved: number[] = [];
const approvedToRun: number[] = [];
const clickToProcess: number[] = [];
const findingToProposal: number[] = [];
const findingToModel: number[] = [];
const ahead: number[] = [];
const modelToProposal: number[] = [];
let modelMs = 0;
const runFailures = new Map<string, number>();

try {
  console.log(`store: ${db.kind}, ${ROUNDS} rounds`);
  const started = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    const host = `appr-${round}`;
    const alert = await fetch(`http://127.0.0.1:${bot.port}/alerts/generic`, {
      method: 'POST',
      body: JSON.stringify({ host, name: 'DiskFull', disk: { mount: '/', usedPercent: 97 } }),
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    if (alert.status !== 202) throw new Error(`alert answered ${alert.status}`);
    const incidentId = Number(
      (await rows<{ id: string }>('SELECT id FROM incidents WHERE host = $1', [host]))[0]!.id,
    );
    await until('the root message', async () => (await postedTs(incidentId, 'incident:%:root')).length > 0);
    await bot.boss.send(QUEUES.analyzeEvidence.name, { incidentId, paths: [evidence] });

    // (b) The findings, then the agent's proposal, as Slack received them.
    const proposalId = await until(
      "the agent's proposal",
      async () => {
        const r = await rows<{ id: string }>(
          `SELECT p.id FROM proposals p JOIN thread_messages m ON m.dedup_key = 'proposal:' || p.id
           WHERE p.incident_id = $1 AND m.ts IS NOT NULL`,
          [incidentId],
        );
        return r[0] ? Number(r[0].id) : undefined;
      },
      60_000,
    );
    const findings = await postedTs(incidentId, 'job:%:finding:%');
    const [proposalTs] = await postedTs(incidentId, `proposal:${proposalId}`);
    const findingAt = Math.min(...findings.map((ts) => postedAt(ts)!));
    const proposalAt = postedAt(proposalTs!)!;
    // The model's own time between the two, whatever part of it fell inside the window.
    let inWindow = 0;
    for (const r of model.requests) {
      const from = Math.max(r.answeredAt - r.handledMs, findingAt);
      const to = Math.min(r.answeredAt, proposalAt);
      if (r.answeredAt > 0 && to > from) inWindow += to - from;
    }
    modelMs += inWindow;
    findingToProposal.push(proposalAt - findingAt - inWindow);
    // The outbox posts a thread's replies in order: what the proposal waited behind.
    const [rootTs] = await postedTs(incidentId, 'incident:%:root');
    ahead.push(
      slack
        .callsTo('chat.postMessage')
        .filter((c) => c.args.thread_ts === rootTs && c.at >= findingAt && c.at < proposalAt).length,
    );
    const asked = model.requests.find((r) => userText(r.body).includes(`Incident #${incidentId},`));
    if (asked) {
      findingToModel.push(asked.at - findingAt);
      modelToProposal.push(proposalAt - asked.answeredAt);
    }

    // (a) An approver clicks Approve on the message as Slack shows it.
    const message = slack.message(CHANNEL, proposalTs!)!;
    const button = (
      message.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>
    )
      .find((b) => b.type === 'actions')
      ?.elements?.find((e) => e.action_id === APPROVE_ACTION);
    if (!button) throw new Error(`proposal ${proposalId} has no Approve button`);
    const clickedAt = wallMs();
    const res = await signedRequest(
      `http://127.0.0.1:${bot.port}/slack/events`,
      SECRET,
      blockActionsBody({
        user: APPROVER,
        actions: [{ action_id: APPROVE_ACTION, value: button.value }],
        message: { ts: message.ts, text: message.text, blocks: message.blocks },
        channel: CHANNEL,
        response_url: slack.responseUrl(),
      }),
    );
    if (res.status !== 200) throw new Error(`the click answered ${res.status}`);
    const runAt = await until('run.started', () => auditAt('run.started', proposalId), 60_000);
    const approvedAt = (await auditAt('proposal.approved', proposalId))!;
    clickToRun.push(runAt - clickedAt);
    clickToApproved.push(approvedAt - clickedAt);
    approvedToRun.push(runAt - approvedAt);
    // The run's result (the script printed when it started), then the agent's reading of it.
    const [run] = await until(
      'the run to end',
      async () => {
        const r = await rows<{ id: string; state: string; error: string | null }>(
          `SELECT id, state, error FROM runs WHERE proposal_id = $1 AND finished_at IS NOT NULL`,
          [proposalId],
        );
        return r.length > 0 ? r : undefined;
      },
      60_000,
    );
    const result = await until(
      'the run result',
      async () =>
        (
          await rows<{ body: { text: string } | string }>(
            'SELECT body FROM thread_messages WHERE dedup_key = $1',
            [`run:${run!.id}:result`],
          )
        )[0]?.body,
    );
    const text = (typeof result === 'string' ? JSON.parse(result) : result).text as string;
    const ns = run!.state === 'succeeded' ? /\b(\d{19})\b/.exec(text)?.[1] : undefined;
    if (ns) clickToProcess.push(Number(BigInt(ns) / 1000n) / 1000 - clickedAt);
    else {
      // The reason, without what differs per run: the stderr's first line, or the error.
      const why = (/--- stderr ---\n(.*)/.exec(text)?.[1] ?? run!.error ?? text).slice(0, 160);
      runFailures.set(why, (runFailures.get(why) ?? 0) + 1);
    }
    await until(
      "the agent's reading of the result",
      async () => (await postedTs(incidentId, 'agent:%:turn:%')).length >= 2,
      60_000,
    );
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`${ROUNDS} rounds in ${seconds.toFixed(1)} s`);

  const runP99 = percentile(clickToRun, 99);
  console.log(
    `(a) approval click → run.started audit row: ${summary(clickToRun)} (${clickToRun.length} clicks)`,
  );
  console.log(`    click → approval recorded: ${summary(clickToApproved)}`);
  console.log(`    approval recorded → run.started: ${summary(approvedToRun)}`);
  if (clickToProcess.length > 0)
    console.log(
      `    click → the script's process started (in the sandbox): ${summary(clickToProcess)} (${clickToProcess.length} runs)`,
    );
  for (const [why, n] of runFailures) console.log(`    ${n} run(s) did not start a process: ${why}`);
  console.log(
    `${runP99 < 500 ? 'PASS' : 'FAIL'}  p99 under 500 ms (p99 is ${(runP99 / 500).toFixed(2)}× the goal)`,
  );

  const proposalP99 = percentile(findingToProposal, 99);
  console.log(
    `(b) finding posted → proposal posted, less the model's time: ${summary(findingToProposal)} (${findingToProposal.length} turns; the model's time subtracted: ${modelMs.toFixed(1)} ms in all)`,
  );
  if (findingToModel.length > 0) {
    console.log(`    finding posted → the model asked: ${summary(findingToModel)}`);
    console.log(`    the model answered → proposal posted: ${summary(modelToProposal)}`);
  }
  console.log(
    `    replies posted to the thread from the first finding to the proposal: ${percentile(ahead, 50)} at the median, ${Math.max(...ahead)} at most`,
  );
  console.log(
    `${proposalP99 < 200 ? 'PASS' : 'FAIL'}  p99 under 200 ms (p99 is ${(proposalP99 / 200).toFixed(2)}× the goal)`,
  );
} finally {
  await bot.close();
  if (db.kind === 'postgres')
    await db
      .executeSql(`DROP SCHEMA ${schema} CASCADE; DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)
      .catch(() => {});
  await db.close();
  await model.close();
  await slack.close();
  rmSync(dir, { recursive: true, force: true });
}
