/**
 * The seed incident at its own scale, timed: `npm run bench:incident`.
 *
 * A real Podman engine (test/helpers/podman.ts, driven by the real Docker CLI) runs BENCH_DUMPS
 * (default 8) containers of real Python processes that fill their heap with BENCH_HEAP_MIB
 * (default 256) MiB of text (JSON, HTML, log lines, many distinct URLs), BENCH_STREAM (default 6)
 * of them holding the radio URL in a request line, then abort: the kernel writes each core into
 * its container's writable layer. A real sshd on loopback reaches the engine as a host would.
 *
 * In the same run:
 *   1. the seed's manual loop: `ssh host "docker cp <id>:/app/core - | gzip" | gunzip > core.N`,
 *      one container after another;
 *   2. the whole bot (fake Slack, fake Anthropic, the bot's store on PGlite, the customers'
 *      database on the PostgreSQL of DATABASE_URL): a disk alert → collection over SSH → the pull
 *      proposal, approved at once → the analysis as the bytes arrive → "6 of 8" in the thread →
 *      the agent's SQL, approved at once → the customer's row in the thread.
 * It prints alert → "6 of 8" and alert → the customer beside the manual loop's time, and the
 * ratio (goal: "6 of 8" in at most 0.5× the manual loop). Approvals are clicked the moment the
 * proposals appear: the figures are the bot's time, not a human's.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config/env.ts';
import { countExternalMemoryInHeapLimits } from '../src/gc-tuning.ts';
import { createLogger } from '../src/log.ts';
import { startBot } from '../src/main.ts';
import {
  endTurn,
  type MessagesRequest,
  startFakeAnthropic,
  toolUse,
} from '../test/helpers/fake-anthropic.ts';
import {
  blockActionsBody,
  FAKE_IDS,
  type FakeMessage,
  signedRequest,
  startFakeSlack,
} from '../test/helpers/fake-slack.ts';
import { IMAGE, RUN_FLAGS, startPodman } from '../test/helpers/podman.ts';
import { startSshd } from '../test/helpers/sshd.ts';
import { until } from '../test/helpers/wait.ts';

// The bot runs in this process, tuned as `nightshift serve` tunes its own (src/cli/main.ts).
countExternalMemoryInHeapLimits();

const DUMPS = Number(process.env.BENCH_DUMPS ?? 8);
const STREAM_DUMPS = Number(process.env.BENCH_STREAM ?? 6);
const HEAP_MIB = Number(process.env.BENCH_HEAP_MIB ?? 256);
/** The longest any one stage may take before the run fails, printing the thread (seconds). */
const STAGE_MS = Number(process.env.BENCH_STAGE_S ?? 3600) * 1000;
const POSTGRES_URL = process.env.DATABASE_URL;
if (!POSTGRES_URL)
  throw new Error('bench:incident needs DATABASE_URL (the customers’ database is made there)');

const STREAM = 'http://radio.graveyard-shift.test:8000/live/stream.mp3';
const CUSTOMER = 'Graveyard Shift Radio GmbH';
const SECRET = '0123456789abcdef0123456789abcdef';
const TOKEN = 'alert-token-0123456789abcdef';
const APPROVER = 'U0APPROVER';
const CHANNEL = FAKE_IDS.channel;

/**
 * A worker's heap: text of many kinds and distinct URLs; argv[2], the radio URL or '', in a request
 * line (only in argv and the heap of the workers that read it: not in this script's text).
 */
const WORKER_PY = `
import json, os, random, sys
mib, stream, idx = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
random.seed(idx)
keep = []
if stream:
    keep.append('GET /api/feeds/poll?customer_id=4711&url=' + stream + ' HTTP/1.1')
    keep.append(stream)
keep.append('GET /api/health?worker=%d HTTP/1.1' % idx)
size, i = 0, 0
while size < mib * 1048576:
    u = 'https://site%d.example.com/articles/%d/%08x?ref=w%d' % (random.randrange(20000), i, random.getrandbits(32), idx)
    k = i % 3
    if k == 0:
        s = json.dumps({'id': i, 'url': u, 'title': 'Article %d of the morning feed' % i, 'tags': ['news', 'feed', str(i % 97)]})
    elif k == 1:
        s = '<html><head><title>Page %d</title></head><body><a href="%s">%s</a><p>Read more at %s</p></body></html>' % (i, u, u, u)
    else:
        s = '2026-12-03T03:%02d:%02d INFO worker-%d fetched %s status=200 bytes=%d' % (i // 60 % 60, i % 60, idx, u, random.randrange(10**6))
    keep.append(s)
    size += len(s) + 49
    i += 1
os.abort()
`;

const log = (line: string) => process.stderr.write(`${line}\n`);
const work = mkdtempSync(join(tmpdir(), 'nightshift-bench-incident-'));
chmodSync(work, 0o755);
const podman = await startPodman();
const cleanups: Array<() => Promise<unknown>> = [() => podman.stop()];
// Interrupted: the engine, its containers, the bot and the customers' database go too.
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, async () => {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
try {
  // The containers see the host's /usr read-only (Python and its libraries) over the test image.
  log(`making ${DUMPS} cores of ${HEAP_MIB} MiB of text (${STREAM_DUMPS} with the radio URL)…`);
  const made = performance.now();
  const ids: string[] = [];
  const makeOne = async (n: number) => {
    const script = `mkdir -p /app && cd /app && python3 -c "$0" ${HEAP_MIB} '${n < STREAM_DUMPS ? STREAM : ''}' ${n}; exec sleep 3600`;
    const id = (
      await podman.docker([
        'run',
        '-d',
        ...RUN_FLAGS,
        '-v',
        '/usr:/usr:ro',
        '-v',
        '/usr/lib:/lib:ro',
        '-v',
        '/usr/lib64:/lib64:ro',
        IMAGE,
        'sh',
        '-c',
        script,
        WORKER_PY,
      ])
    ).trim();
    await until(
      `the core of worker ${n}`,
      async () =>
        !/python3/.test(await podman.docker(['exec', id, 'ps', '-o', 'comm']).catch(() => 'python3')),
      600_000,
    );
    ids[n] = id.slice(0, 12);
  };
  // Two at a time: the machine has few cores, and each heap is built by one.
  for (let n = 0; n < DUMPS; n += 2) await Promise.all([n, n + 1].filter((k) => k < DUMPS).map(makeOne));
  const sizes = await Promise.all(
    ids.map(async (id) =>
      Number((await podman.docker(['exec', id, 'stat', '-c', '%s', '/app/core'])).trim()),
    ),
  );
  const total = sizes.reduce((a, b) => a + b, 0);
  log(
    `made in ${((performance.now() - made) / 1000).toFixed(1)} s: ${(total / 2 ** 20).toFixed(0)} MiB of cores`,
  );

  const sshd = await startSshd({ env: podman.clientEnv });
  cleanups.push(() => sshd.stop());

  // 1. The manual loop, one container after another, over the same sshd and engine.
  const manualDir = join(work, 'manual');
  const ssh = (command: string, out: string) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(
        'sh',
        [
          '-c',
          `ssh -i ${sshd.privateKeyPath} -p ${sshd.port} -o UserKnownHostsFile=${sshd.knownHostsPath} -o StrictHostKeyChecking=yes -o BatchMode=yes ${sshd.user}@${sshd.host} '${command}' | gunzip > ${out}`,
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`manual copy exited ${code}`))));
    });
  await import('node:fs/promises').then((fs) => fs.mkdir(manualDir));
  const manualStarted = performance.now();
  for (const [n, id] of ids.entries())
    await ssh(`docker cp ${id}:/app/core - | gzip`, join(manualDir, `core.${n}`));
  const manualSeconds = (performance.now() - manualStarted) / 1000;
  const copied = ids.reduce((sum, _, n) => sum + statSync(join(manualDir, `core.${n}`)).size, 0);
  log(`manual loop: ${manualSeconds.toFixed(1)} s for ${(copied / 2 ** 20).toFixed(0)} MiB`);
  rmSync(manualDir, { recursive: true, force: true });

  // 2. The bot.
  const hostsPath = join(work, 'hosts.yml');
  writeFileSync(
    hostsPath,
    `knownHosts: ${sshd.knownHostsPath}\nhosts:\n  - name: web-1\n    address: ${sshd.host}\n    port: ${sshd.port}\n    user: ${sshd.user}\n    key: ${sshd.privateKeyPath}\n    labels: [web-1:9100]\n    coreSearchPaths: [${work}]\n`,
  );
  const crmName = `ns_bench_crm_${process.pid}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${crmName}`);
  cleanups.push(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${crmName} WITH (FORCE)`);
    await admin.end();
  });
  const crmUrl = new URL(POSTGRES_URL);
  crmUrl.pathname = `/${crmName}`;
  const crm = new pg.Client({ connectionString: crmUrl.toString() });
  await crm.connect();
  await crm.query(`CREATE TABLE sites (id int PRIMARY KEY, customer text NOT NULL);
    CREATE TABLE integrations (site_id int NOT NULL REFERENCES sites, kind text NOT NULL, url text NOT NULL);`);
  await crm.query(`INSERT INTO sites VALUES (4711, $1), (4712, 'Quiet Gardens Ltd')`, [CUSTOMER]);
  await crm.query(
    `INSERT INTO integrations VALUES (4711, 'rss', $1), (4712, 'rss', 'https://example.com/rss')`,
    [STREAM],
  );
  await crm.end();

  const slack = await startFakeSlack();
  cleanups.push(() => slack.close());
  const model = await startFakeAnthropic();
  cleanups.push(() => model.close());
  // The model: read the findings; once they name a stream URL, propose the query for it; once the
  // result is in, say whose it is. Every turn decides from what it was shown (the collection's
  // turn comes first and names no stream).
  const lastText = (request: MessagesRequest) => JSON.stringify(request.messages.at(-1)?.content ?? '');
  const turn = (request: MessagesRequest) => {
    const seen = lastText(request);
    if (seen.includes(CUSTOMER))
      return endTurn(`The radio stream is the RSS feed of ${CUSTOMER} (site 4711).`);
    const url = /(http:\/\/radio\.graveyard-shift\.test:8000\/live\/stream\.mp3) — in \d+ of \d+ dumps/.exec(
      seen,
    )?.[1];
    if (url)
      return toolUse('propose_sql', {
        database: 'crm',
        text: `SELECT s.id, s.customer, i.url FROM sites s JOIN integrations i ON i.site_id = s.id WHERE i.kind = 'rss' AND i.url = '${url}' ORDER BY s.id`,
        why: 'Which customer has the endless radio stream as its RSS feed?',
      });
    if (request.messages.at(-1)?.role === 'user' && /tool_result/.test(seen))
      return endTurn('Nothing to propose yet.');
    return toolUse('list_findings', {}, 'Let me look at what the analysis found.');
  };
  model.reply(...Array.from({ length: 40 }, () => turn));

  const bot = await startBot({
    config: {
      ...loadConfig({
        SLACK_BOT_TOKEN: slack.botToken,
        SLACK_SIGNING_SECRET: SECRET,
        SLACK_API_URL: slack.apiUrl,
        INCIDENT_CHANNEL: CHANNEL,
        ALERT_WEBHOOK_TOKEN: TOKEN,
        NIGHTSHIFT_HOSTS: hostsPath,
        NIGHTSHIFT_APPROVERS: APPROVER,
        NIGHTSHIFT_DATA_DIR: join(work, 'data'),
        NIGHTSHIFT_SQL_DATABASES: 'crm',
        NIGHTSHIFT_SQL_CRM_URL: crmUrl.toString(),
        ANTHROPIC_API_KEY: model.apiKey,
        ANTHROPIC_BASE_URL: model.baseURL,
      }),
      PORT: 0,
    },
    log: createLogger({ level: process.env.BENCH_LOG ?? 'silent' }),
  });
  cleanups.unshift(() => bot.close());
  const events = `http://127.0.0.1:${bot.port}/slack/events`;
  const approve = async (message: FakeMessage) => {
    const actions = (
      message.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>
    ).find((b) => b.type === 'actions');
    const button = actions?.elements?.find((e) => e.action_id === 'proposal_approve');
    if (!button) throw new Error(`no Approve button on ${message.text}`);
    await signedRequest(
      events,
      SECRET,
      blockActionsBody({
        user: APPROVER,
        actions: [{ action_id: 'proposal_approve', value: button.value }],
        message: { ts: message.ts },
        channel: CHANNEL,
        response_url: slack.responseUrl(),
      }),
    );
  };

  const alertmanager = readFileSync(
    new URL('../test/alerts/fixtures/alertmanager-disk.json', import.meta.url),
    'utf8',
  );
  const t0 = performance.now();
  const at = () => (performance.now() - t0) / 1000;
  await fetch(`http://127.0.0.1:${bot.port}/alerts/alertmanager`, {
    method: 'POST',
    body: alertmanager,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  const root = await until('the root', () =>
    (slack.messages.get(CHANNEL) ?? []).find((m) => /Disk \/ filling on web-1/.test(m.text ?? '')),
  );
  const thread = () => slack.thread(CHANNEL, root.ts);
  // Waits for a stage, says when it is reached; on a timeout, prints the thread as it stands.
  const stage = async <T>(what: string, probe: () => T | undefined | false, ms: number): Promise<T> => {
    try {
      const value = await until(what, probe, Math.min(ms, STAGE_MS));
      log(`${at().toFixed(1)} s: ${what}`);
      return value;
    } catch (error) {
      log(
        thread()
          .map((m) => m.text)
          .join('\n---\n'),
      );
      throw error;
    }
  };
  const pull = await stage(
    'the pull proposal',
    () => thread().find((m) => /^Proposal #\d+ \(pull from host web-1\)/.test(m.text ?? '')),
    300_000,
  );
  const tProposal = at();
  await approve(pull);
  // "6 of 8" as the thread shows it, in any message or any edit of one (the headline so far too).
  const headline = new RegExp(`in ${STREAM_DUMPS} of ${DUMPS} dumps`);
  const shown = (m: FakeMessage) => [m.text ?? '', ...m.history.map((h) => h.text ?? '')];
  let firstSoFar: number | undefined;
  let pulledAt: number | undefined;
  await stage(
    `"${STREAM_DUMPS} of ${DUMPS}" in the thread`,
    () => {
      if (
        firstSoFar === undefined &&
        thread().some((m) => /so far, Likely endless stream/.test(m.text ?? ''))
      )
        firstSoFar = at();
      // Watched in the same loop: the stages after this one are only looked for once it is reached.
      if (
        pulledAt === undefined &&
        thread().some((m) => /Pulled \d+ of \d+ file\(s\) from web-1/.test(m.text ?? ''))
      )
        pulledAt = at();
      return thread().some((m) => shown(m).some((t) => headline.test(t)));
    },
    3_600_000,
  );
  const tHeadline = at();
  const pulled = await stage(
    'the pull’s result',
    () => thread().find((m) => /Pulled \d+ of \d+ file\(s\) from web-1/.test(m.text ?? '')),
    3_600_000,
  );
  const tPulledSeen = pulledAt ?? at();
  const sql = await stage(
    'the SQL proposal',
    () => thread().find((m) => /^Proposal #\d+ \(read-only SQL on database crm\)/.test(m.text ?? '')),
    600_000,
  );
  await approve(sql);
  await stage(
    'the customer in the thread',
    () => thread().some((m) => (m.text ?? '').includes(CUSTOMER)),
    600_000,
  );
  const tCustomer = at();
  const done = thread().find((m) => /Analysis done/.test(m.text ?? ''));

  const row = (what: string, seconds: number) =>
    `${what.padEnd(44)} ${seconds.toFixed(1).padStart(7)} s  ${(seconds / manualSeconds).toFixed(2)}× manual`;
  console.log(
    `\n${DUMPS} cores, ${(total / 2 ** 20).toFixed(0)} MiB (heap text ${HEAP_MIB} MiB each), ${STREAM_DUMPS} with the radio URL`,
  );
  console.log(
    `${'manual loop (docker cp | gzip over ssh, in turn)'.padEnd(44)} ${manualSeconds.toFixed(1).padStart(7)} s`,
  );
  console.log(row('bot: alert → pull proposal', tProposal));
  if (firstSoFar !== undefined) console.log(row('bot: alert → first headline so far', firstSoFar));
  console.log(row(`bot: alert → "${STREAM_DUMPS} of ${DUMPS}" in the thread`, tHeadline));
  console.log(row('bot: alert → pull result seen', tPulledSeen));
  console.log(row('bot: alert → the customer (approved SQL)', tCustomer));
  console.log(`pull: ${pulled.text?.split('\n')[0]}`);
  console.log(`analysis: ${done?.text ?? '(not done)'}`);
  console.log(
    `ratio ("${STREAM_DUMPS} of ${DUMPS}" / manual loop): ${(tHeadline / manualSeconds).toFixed(2)} (goal <= 0.5)`,
  );
} finally {
  for (const cleanup of cleanups) await cleanup().catch((error: unknown) => log(`cleanup: ${String(error)}`));
  rmSync(work, { recursive: true, force: true });
}
