import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { QUEUES } from '../../src/jobs/queues.ts';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { ALERT_TOKEN, CHANNEL, deliverEvent, reactOn, startTestBot } from '../helpers/bot.ts';
import { makePythonIncident, type PythonIncident, REQUEST_LINE } from '../helpers/cores.ts';
import { POSTGRES_URL, testDatabases } from '../helpers/db.ts';
import {
  endTurn,
  type FakeAnthropic,
  type MessagesRequest,
  startFakeAnthropic,
  toolUse,
  type WireToolResultBlock,
} from '../helpers/fake-anthropic.ts';
import {
  blockActionsBody,
  type FakeMessage,
  type FakeSlack,
  slashCommandBody,
  startFakeSlack,
} from '../helpers/fake-slack.ts';
import { APPROVER } from '../helpers/proposals.ts';
import { threadTranscript } from '../helpers/thread-transcript.ts';
import { until } from '../helpers/wait.ts';

/**
 * The seed's incident, end to end, through the real app: an Alertmanager disk alert opens the
 * incident; eight real Python workers, six of them stuck reading an endless radio stream, were
 * killed with SIGABRT and their cores are analysed on the job queue; the findings reach the
 * thread; the agent (the fake Anthropic API, scripted) reads them with list_findings and proposes
 * SQL to find the customer whose RSS feed is the radio URL, in a second database on the test
 * PostgreSQL; a non-approver's ✅ is refused privately, an approver's Approve button (clicked
 * twice) runs it once; the customer's row comes back to the thread with the CSV; and
 * `/investigate summary` tells the whole story from the database.
 *
 * The bot's own store runs on each of testDatabases(); the customers' database is always the
 * real PostgreSQL (the runner runs SQL on a server), so this needs DATABASE_URL and a role that
 * may create databases (.ci/run grants it).
 */
// The bot is started with this (test/helpers/bot.ts); its Slack events are signed there too.
const TOKEN = ALERT_TOKEN;
const STRANGER = 'U0STRANGER';
const CUSTOMER = 'Graveyard Shift Radio GmbH';
const alertmanager = readFileSync(
  new URL('../alerts/fixtures/alertmanager-disk.json', import.meta.url),
  'utf8',
);

/** The SQL the model writes once it knows the URL: the customer whose RSS integration is it. */
const customerSql = (url: string) =>
  [
    'SELECT s.id, s.customer, i.url',
    'FROM sites s JOIN integrations i ON i.site_id = s.id',
    `WHERE i.kind = 'rss' AND i.url = '${url}'`,
    'ORDER BY s.id',
  ].join('\n');

const lastToolResult = (request: MessagesRequest): string => {
  const blocks = request.messages.flatMap((m) => (typeof m.content === 'string' ? [] : m.content));
  const result = blocks.filter((b): b is WireToolResultBlock => b.type === 'tool_result').at(-1);
  if (!result) return '';
  return typeof result.content === 'string' ? result.content : result.content.map((b) => b.text).join('');
};

const userTexts = (request: MessagesRequest): string =>
  request.messages
    .filter((m) => m.role === 'user')
    .flatMap((m) =>
      typeof m.content === 'string' ? [m.content] : m.content.map((b) => (b.type === 'text' ? b.text : '')),
    )
    .join('\n');

/** A second database on the test server, the customers' one: created for the run, dropped after. */
async function createCustomerDatabase(url: string, streamUrl: string, feedUrl: string) {
  const name = `ns_crm_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (error) {
    throw new Error(
      `the seed incident needs a second database on the test server, and the role of DATABASE_URL may not create one (ALTER ROLE … CREATEDB; .ci/run grants it): ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    await admin.end();
  }
  const crmUrl = new URL(url);
  crmUrl.pathname = `/${name}`;
  const crm = new pg.Client({ connectionString: crmUrl.toString() });
  await crm.connect();
  try {
    await crm.query(`
      CREATE TABLE sites (id int PRIMARY KEY, customer text NOT NULL, plan text NOT NULL);
      CREATE TABLE integrations (site_id int NOT NULL REFERENCES sites, kind text NOT NULL, url text NOT NULL);`);
    await crm.query(
      `INSERT INTO sites VALUES (4711, $1, 'pro'), (4712, 'Quiet Gardens Ltd', 'basic'), (4713, 'Morning News AG', 'pro')`,
      [CUSTOMER],
    );
    // The radio URL once more, but as another customer's webhook: the query must ask for RSS.
    await crm.query(
      `INSERT INTO integrations VALUES (4711, 'rss', $1), (4712, 'rss', $2), (4713, 'webhook', $1), (4713, 'rss', $2)`,
      [streamUrl, feedUrl],
    );
  } finally {
    await crm.end();
  }
  return {
    name,
    url: crmUrl.toString(),
    async drop() {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

describe('the seed incident end to end', { skip: POSTGRES_URL ? false : 'set DATABASE_URL' }, () => {
  let work: string;
  let incident: PythonIncident;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nightshift-seed-'));
    incident = await makePythonIncident(join(work, 'cores'), { workers: 8, streamWorkers: 6 });
  });
  after(async () => {
    await incident?.close();
    rmSync(work, { recursive: true, force: true });
  });

  for (const database of testDatabases()) {
    describe(`the bot's store on ${database.name}`, () => {
      let slack: FakeSlack;
      let model: FakeAnthropic;
      let db: Db;
      let bot: Bot;
      let crm: Awaited<ReturnType<typeof createCustomerDatabase>>;
      let incidentId: number;
      let rootTs: string;
      let proposalId: number;
      let proposalMessage: FakeMessage;
      /** What the model was shown: the list_findings result, and the run's result in its next turn. */
      let listed = '';
      let heardResult = '';
      let sql = '';

      before(async () => {
        slack = await startFakeSlack();
        model = await startFakeAnthropic();
        crm = await createCustomerDatabase(POSTGRES_URL!, incident.streamUrl, incident.feedUrl);
        db = await database.open();
        bot = await startTestBot({
          db,
          slack,
          env: {
            NIGHTSHIFT_APPROVERS: APPROVER,
            NIGHTSHIFT_DATA_DIR: join(work, `data-${database.name}`),
            NIGHTSHIFT_SQL_DATABASES: 'crm',
            NIGHTSHIFT_SQL_CRM_URL: crm.url,
            ANTHROPIC_API_KEY: model.apiKey,
            ANTHROPIC_BASE_URL: model.baseURL,
          },
        });
        // What the model does: read the findings, propose the query for the URL they name, and
        // once the result is in, say whose feed it is.
        model.reply(
          toolUse('list_findings', {}, 'Let me look at what the analysis found.'),
          (request) => {
            listed = lastToolResult(request);
            const url = /(http:\/\/127\.0\.0\.1:\d+\/live\/radio\.mp3) — in \d+ of \d+ dumps/.exec(
              listed,
            )?.[1];
            if (!url) return endTurn('The findings name no stream URL.');
            sql = customerSql(url);
            return toolUse('propose_sql', {
              database: 'crm',
              text: sql,
              why: 'Which customer has the endless radio stream as its RSS feed?',
            });
          },
          (request) => {
            heardResult = userTexts(request);
            return endTurn(`The radio stream is the RSS feed of ${CUSTOMER} (site 4711).`);
          },
        );
      });
      after(async () => {
        // The thread as the fake Slack recorded it, for the README (docs/seed-thread.md).
        const record = process.env.NIGHTSHIFT_RECORD_THREAD;
        if (record && rootTs)
          writeFileSync(record.replace('{db}', database.name), threadTranscript(slack, CHANNEL, rootTs));
        await bot?.close();
        await db?.close();
        await crm?.drop();
        await model?.close();
        await slack?.close();
      });

      const thread = () => slack.thread(CHANNEL, rootTs);
      const runs = async () =>
        (
          await db.executeSql<{ n: number }>('SELECT count(*)::int AS n FROM runs WHERE proposal_id = $1', [
            proposalId,
          ])
        ).rows[0]!.n;

      it('opens the incident from the disk alert', async () => {
        const res = await fetch(`http://127.0.0.1:${bot.port}/alerts/alertmanager`, {
          method: 'POST',
          body: alertmanager,
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        assert.equal(res.status, 202);
        const root = await until('the root', () =>
          (slack.messages.get(CHANNEL) ?? []).find((m) => /Disk \/ filling on web-1/.test(m.text ?? '')),
        );
        rootTs = root.ts;
        const { rows } = await db.executeSql<{ id: string }>(`SELECT id FROM incidents WHERE host = 'web-1'`);
        assert.equal(rows.length, 1);
        incidentId = Number(rows[0]!.id);
      });

      it('analyses the eight cores and posts the findings: the radio URL in 6 of 8 dumps', async () => {
        // What a pull hands over once the cores are on the bot host: one analysis of the batch.
        await bot.boss.send(QUEUES.analyzeEvidence.name, {
          incidentId,
          paths: incident.cores.map((c) => c.path),
        });
        await until(
          'the analysis in the thread',
          () => thread().find((m) => /Analysis done: 8 dumps/.test(m.text ?? '')),
          45_000,
        );
        // One answer: the stream's URL as a plain URL under the headline, the request with its
        // customer, the correlations with their counts; the rest in a file beside it.
        const answers = thread().filter((m) => /Analysis of 8 dumps/.test(m.text ?? ''));
        assert.equal(
          answers.length,
          1,
          thread()
            .map((m) => m.text)
            .join('\n---\n'),
        );
        const shown = JSON.stringify(answers[0]!.blocks);
        assert.ok(shown.includes(`Likely endless stream in 6 of 8 dumps:*\\n${incident.streamUrl}`), shown);
        assert.ok(
          shown.includes(REQUEST_LINE.replace(/ HTTP\/1\.1$/, '')) && /customer 4711/.test(shown),
          shown,
        );
        assert.match(shown, /Top correlations/);
        assert.match(shown, /Look at next/);
        // The root names it too, once the outbox has refreshed it.
        await until('the headline on the root', () =>
          JSON.stringify(slack.message(CHANNEL, rootTs)!.blocks).includes(
            `*Found:* Likely endless stream in 6 of 8 dumps: ${incident.streamUrl}`,
          )
            ? true
            : undefined,
        );
      });

      it('lets the agent read the findings and propose the SQL, showing its exact text', async () => {
        proposalMessage = await until(
          'the SQL proposal',
          () => thread().find((m) => /^Proposal #\d+ \(read-only SQL on database crm\)/.test(m.text ?? '')),
          30_000,
        );
        assert.match(listed, new RegExp(`${escapeRegExp(incident.streamUrl)} — in 6 of 8 dumps`));
        assert.equal(sql, customerSql(incident.streamUrl));
        proposalId = Number(/^Proposal #(\d+)/.exec(proposalMessage.text ?? '')![1]);
        const shown = (proposalMessage.blocks as Array<Record<string, unknown>>)
          .filter((b) => b.type === 'rich_text')
          .map((b) => JSON.stringify(b))
          .join('');
        assert.ok(shown.includes(JSON.stringify(sql)), `the exact SQL in the message: ${shown}`);
        assert.match(JSON.stringify(proposalMessage.blocks), /Waiting for approval: 0 of 1/);
        const said = await until('the agent saying it proposed', () =>
          thread().find((m) => /Agent:.*\n?Proposed: #\d+/s.test(m.text ?? '')),
        );
        assert.match(said.text ?? '', /Looked at: list_findings, propose_sql "crm"/);
        const { rows } = await db.executeSql<{ state: string; proposed_by: string; text: string }>(
          'SELECT state, proposed_by, text FROM proposals WHERE id = $1',
          [proposalId],
        );
        assert.deepEqual(rows, [{ state: 'pending', proposed_by: 'agent', text: sql }]);
      });

      it("refuses a non-approver's ✅ privately, and nothing runs", async () => {
        const res = await reactOn(
          bot,
          { user: STRANGER, name: 'white_check_mark', ts: proposalMessage.ts },
          'Ev-seed-stranger-check',
        );
        assert.equal(res.status, 200);
        const answer = await until('the ephemeral refusal', () =>
          slack.ephemerals.find((e) => e.user === STRANGER),
        );
        assert.match(answer.text ?? '', /not an approver/);
        assert.equal(answer.channel, CHANNEL);
        assert.equal(answer.thread_ts, rootTs, 'in the thread, named by its root');
        const { rows } = await db.executeSql<{ state: string }>('SELECT state FROM proposals WHERE id = $1', [
          proposalId,
        ]);
        assert.deepEqual(rows, [{ state: 'pending' }]);
        assert.equal(await runs(), 0);
        assert.ok(
          !thread().some((m) => m.user === STRANGER || /SQL on crm/.test(m.text ?? '')),
          'nothing was posted for it',
        );
      });

      it("runs the SQL once on an approver's double click of Approve, and posts the customer's row", async () => {
        const blocks = proposalMessage.blocks as Array<{
          type: string;
          elements?: Array<{ action_id?: string; value?: string }>;
        }>;
        const approve = blocks
          .find((b) => b.type === 'actions')
          ?.elements?.find((e) => e.action_id === 'proposal_approve');
        assert.ok(approve?.value, 'an Approve button');
        const responseUrls = [slack.responseUrl(), slack.responseUrl()];
        const click = (responseUrl: string) =>
          deliverEvent(
            bot,
            blockActionsBody({
              user: APPROVER,
              actions: [{ action_id: 'proposal_approve', value: approve.value! }],
              message: { ts: proposalMessage.ts, text: proposalMessage.text, blocks: proposalMessage.blocks },
              channel: CHANNEL,
              response_url: responseUrl,
            }),
          );
        const answers = await Promise.all(responseUrls.map(click));
        assert.deepEqual(
          answers.map((r) => r.status),
          [200, 200],
        );

        const result = await until(
          'the result in the thread',
          () =>
            thread().find((m) =>
              (m.text ?? '').startsWith(`:white_check_mark: SQL on crm (proposal #${proposalId})`),
            ),
          30_000,
        );
        assert.match(result.text ?? '', /1 row/);
        assert.ok((result.text ?? '').includes(CUSTOMER), result.text);
        assert.ok((result.text ?? '').includes('4711'), result.text);
        const file = await until('the CSV in the thread', () =>
          slack.files.find((f) => f.filename.endsWith('-crm.csv') && f.completed),
        );
        assert.equal(file.thread_ts, rootTs);
        assert.equal(file.channel_id, CHANNEL);
        assert.equal(
          Buffer.from(file.bytes!).toString('utf8'),
          `id,customer,url\r\n4711,${CUSTOMER},${incident.streamUrl}\r\n`,
        );
        assert.equal(await runs(), 1);
        // The second click changed nothing; whoever clicked it was told why, privately.
        const approvals = await db.executeSql<{ decided_by: string; via: string; decision: string }>(
          'SELECT decided_by, via, decision FROM approvals WHERE proposal_id = $1',
          [proposalId],
        );
        assert.deepEqual(approvals.rows, [{ decided_by: APPROVER, via: 'button', decision: 'approved' }]);
        const told = slack.responses.filter((r) => responseUrls.includes(r.url));
        assert.equal(told.length, 1, 'one click decided; the other was answered');
        assert.match(JSON.stringify(told[0]!.body), /already (approved|running|done)/);
        const edited = await until('the proposal message edited to done', () => {
          const m = slack.message(CHANNEL, proposalMessage.ts);
          return m && /Done/.test(m.text ?? '') ? m : undefined;
        });
        assert.match(
          JSON.stringify(edited.blocks),
          new RegExp(`Approved by <@${APPROVER}> \\([^)]*button\\)`),
        );
        assert.ok(!JSON.stringify(edited.blocks).includes('proposal_approve'), 'no buttons once decided');
      });

      it('tells the agent the result, and it names the customer', async () => {
        const said = await until(
          "the agent's conclusion",
          () => thread().find((m) => (m.text ?? '').includes(`RSS feed of ${CUSTOMER}`)),
          30_000,
        );
        assert.match(said.text ?? '', /Agent:/);
        assert.match(heardResult, new RegExp(`Proposal #${proposalId} \\(sql on crm\\) ran: succeeded`));
        assert.ok(heardResult.includes(CUSTOMER));
        assert.equal(model.pending(), 0);
      });

      it('shows the whole timeline in `/investigate summary`, as the audit log has it', async () => {
        const responseUrl = slack.responseUrl();
        const res = await deliverEvent(
          bot,
          slashCommandBody({ text: `summary #${incidentId}`, user_id: APPROVER, response_url: responseUrl }),
        );
        assert.equal(res.status, 200);
        const answer = await until('the answer to the command', () =>
          slack.responses.find((r) => r.url === responseUrl),
        );
        assert.match(JSON.stringify(answer.body), /is in its thread, as a file/);
        const file = await until('the summary file', () =>
          slack.files.find((f) => f.filename === `incident-${incidentId}-summary.md` && f.completed),
        );
        assert.equal(file.thread_ts, rootTs);
        const summary = Buffer.from(file.bytes!).toString('utf8');
        const timeline = summary.split('## Timeline (UTC)')[1]!.split('## Impact')[0]!;
        const p = `proposal #${proposalId}`;
        const expected: RegExp[] = [
          /alert firing: disk on web-1/,
          /incident\.opened by nightshift/,
          /job analyze-evidence started/,
          new RegExp(
            `finding \\(critical\\): Likely endless stream in 6 of 8 dumps: ${escapeRegExp(incident.streamUrl)}`,
          ),
          /job analyze-evidence succeeded/,
          new RegExp(
            `proposal\\.created by agent: ${p}, sql on crm, sha256 [0-9a-f]{12}, text: SELECT .+ FROM .+$`,
            'm',
          ),
          new RegExp(
            `proposal\\.decision_refused by ${STRANGER}: ${p}, to approve, via reaction, reason: not_approver`,
          ),
          new RegExp(`proposal\\.approved by ${APPROVER}: ${p}, via button, approval 1 of 1`),
          new RegExp(`run\\.started by nightshift: ${p}, run \\d+, sql on crm`),
          new RegExp(`run\\.finished by nightshift: ${p}, run \\d+, succeeded, exit code 0`),
          new RegExp(`run\\.result_posted by nightshift: ${p}, run \\d+, file run-\\d+-crm\\.csv`),
        ];
        let at = 0;
        for (const pattern of expected) {
          const found = timeline.slice(at).search(pattern);
          assert.ok(found >= 0, `${pattern} after position ${at} of the timeline:\n${timeline}`);
          at += found + 1;
        }
      });

      it('leaves the audit trail in the database', async () => {
        const { rows } = await db.executeSql<{ actor: string; action: string; subject: unknown }>(
          'SELECT actor, action, subject FROM audit_log WHERE incident_id = $1 ORDER BY id',
          [incidentId],
        );
        const entries = rows.map((r) => ({
          entry: `${r.action} by ${r.actor}`,
          subject: (typeof r.subject === 'string' ? JSON.parse(r.subject) : r.subject) as Record<
            string,
            unknown
          >,
        }));
        const trail = entries.map((e) => e.entry);
        const want = [
          'incident.opened by nightshift',
          'proposal.created by agent',
          `proposal.decision_refused by ${STRANGER}`,
          `proposal.approved by ${APPROVER}`,
          'run.started by nightshift',
          'run.finished by nightshift',
          'run.result_posted by nightshift',
        ];
        let at = 0;
        for (const entry of want) {
          const found = trail.indexOf(entry, at);
          assert.ok(found >= 0, `${entry} in order in ${trail.join(', ')}`);
          at = found + 1;
        }
        const only = (entry: string) => {
          const found = entries.filter((e) => e.entry === entry);
          assert.equal(found.length, 1, `one ${entry} in ${trail.join(', ')}`);
          return found[0]!.subject;
        };
        const sha256 = only('proposal.created by agent').sha256;
        assert.match(String(sha256), /^[0-9a-f]{64}$/);
        assert.deepEqual(only(`proposal.decision_refused by ${STRANGER}`), {
          proposal: proposalId,
          decision: 'approved',
          via: 'reaction',
          reason: 'not_approver',
          sha256,
        });
        assert.deepEqual(only(`proposal.approved by ${APPROVER}`), {
          proposal: proposalId,
          sha256,
          via: 'button',
          approvals: 1,
          required: 1,
        });
        // The double click's second half: recorded as refused, the proposal being approved already.
        assert.deepEqual(only(`proposal.decision_refused by ${APPROVER}`), {
          proposal: proposalId,
          decision: 'approved',
          via: 'button',
          reason: 'closed',
          sha256,
        });
        assert.equal(only('run.started by nightshift').sha256, sha256);
        assert.equal(only('run.finished by nightshift').ok, true);
        const run = only('run.started by nightshift').run;
        assert.equal(only('run.result_posted by nightshift').file, `run-${run}-crm.csv`);
      });
    });
  }
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
