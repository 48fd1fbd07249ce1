import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebClient } from '@slack/web-api';
import { createModelClient } from '../../src/agent/client.ts';
import { type AgentDeps, runAgentTurn } from '../../src/agent/turn.ts';
import { recordDelivery } from '../../src/alerts/intake.ts';
import { createProposal, type Proposal } from '../../src/approvals/service.ts';
import { systemClock } from '../../src/clock.ts';
import type { SshConnections } from '../../src/collect/ssh.ts';
import { HostsFileSchema } from '../../src/config/hosts.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { agentTurnJob } from '../../src/jobs/workers/agent-turn.ts';
import { startJobRun } from '../../src/jobs/workers/job-run.ts';
import { type RunnerDeps, runProposalJob } from '../../src/jobs/workers/run-proposal.ts';
import { createLogger } from '../../src/log.ts';
import { slackPoster } from '../../src/slack/app.ts';
import { runIncidentCommand } from '../../src/slack/incident-actions.ts';
import { drainOutbox } from '../../src/slack/outbox.ts';
import type { SlackPoster } from '../../src/slack/poster.ts';
import { queueProposalMessage } from '../../src/slack/proposal-messages.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { POSTGRES_URL, testDatabases } from '../helpers/db.ts';
import { endTurn, type FakeAnthropic, startFakeAnthropic, toolUse } from '../helpers/fake-anthropic.ts';
import { FAKE_IDS, type FakeSlack, type RecordedCall, startFakeSlack } from '../helpers/fake-slack.ts';
import { listenerDeps } from '../helpers/listener-args.ts';
import { APPROVER, approvedProposal, approverPolicy } from '../helpers/proposals.ts';

/**
 * Text from outside the bot (alert fields, SQL errors, run and host output, findings, the model's
 * words, a user's note, a proposal's target) planted with Slack markup, through the bot's own
 * paths and the outbox to the fake Slack: no mrkdwn field that reaches Slack (blocks, the `text`
 * fallback, a file's initial comment) pings, mentions or links, nor closes a code span.
 */
const CHANNEL = FAKE_IDS.channel;
const policy = approverPolicy;
const log = createLogger({ level: 'silent' });

/** Every kind of markup an attacker would try, in one line. */
const ATTACK =
  '<!channel> <!here> <@U123ABC> urgent: <https://evil.example/approve|re-approve here> &lt;!everyone&gt; ```end``` `x`';

/** The mrkdwn strings of a recorded Web API call: `text`, mrkdwn text objects in blocks, a file's comment. */
function mrkdwnOf(call: RecordedCall): string[] {
  const out: string[] = [];
  const args = call.args;
  if (typeof args.text === 'string' && args.mrkdwn !== false && args.mrkdwn !== 'false') out.push(args.text);
  if (typeof args.initial_comment === 'string') out.push(args.initial_comment);
  const blocks = typeof args.blocks === 'string' ? JSON.parse(args.blocks) : args.blocks;
  const walk = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    if (o.type === 'mrkdwn' && typeof o.text === 'string') out.push(o.text);
    for (const value of Object.values(o)) walk(value);
  };
  walk(blocks);
  return out;
}

/**
 * No markup from outside: every `<` opens a mention of a real user the bot put there, and no
 * backticks from outside. The model's own words may hold code (`modelCode`): then its code blocks
 * are closed, so they cannot swallow the bot's lines after them.
 */
function assertInert(calls: readonly RecordedCall[], { modelCode = false } = {}) {
  const texts = calls.flatMap(mrkdwnOf);
  assert.ok(texts.length > 0, 'nothing reached Slack');
  assert.ok(
    texts.some((t) => t.includes('evil.example')),
    'the planted text is shown (escaped), not dropped',
  );
  for (const text of texts) {
    const live = [...text.matchAll(/<[^>]*>?/g)].map((m) => m[0]).filter((m) => m !== `<@${APPROVER}>`);
    assert.deepEqual(live, [], `live markup in mrkdwn: ${text}`);
    assert.ok(!text.includes('&lt;!everyone'), `an escape from outside decodes to markup: ${text}`);
    assert.ok(!text.includes('&amp;lt;!channel'), `escaped twice, shows as &lt;: ${text}`);
    if (modelCode) assert.equal(text.split('```').length % 2, 1, `a code block left open: ${text}`);
    else assert.ok(!text.includes('```end'), `outside backticks open or close a code span: ${text}`);
  }
}

for (const database of testDatabases()) {
  describe(`outside text in the bot's messages on ${database.name}`, () => {
    let slack: FakeSlack;
    let poster: SlackPoster;
    let db: Db;
    let anthropic: FakeAnthropic;
    let work: string;
    let hostNo = 0;
    /** What the agent's turn is given here: the fake Anthropic API, no retries, one host. */
    const agentDeps = (): AgentDeps => ({
      now: systemClock,
      db,
      log,
      model: createModelClient({ apiKey: anthropic.apiKey, baseURL: anthropic.baseURL, maxRetries: 0 }),
      policy,
      channel: CHANNEL,
      evidenceDir: join(work, 'agent-evidence'),
      hosts: ['web-1'],
      sqlDatabases: [],
      maxTurns: 5,
      maxTokens: 100_000,
    });

    before(async () => {
      slack = await startFakeSlack();
      anthropic = await startFakeAnthropic();
      poster = slackPoster(new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl }));
      db = await database.open();
      await migrate(db);
      work = mkdtempSync(join(tmpdir(), 'nightshift-outside-text-'));
    });
    after(async () => {
      await db.close();
      await slack.close();
      await anthropic.close();
      rmSync(work, { recursive: true, force: true });
    });

    /** An incident of its own (a host of its own), its root posted; returns its id. */
    const incident = async (note = 'disk') => {
      const { incident } = await openIncidentByHand(db, {
        host: `web-${++hostNo}`,
        note,
        user: APPROVER,
        channel: CHANNEL,
      });
      return incident.id;
    };
    /** Posts what was queued; the calls that reached the fake Slack meanwhile. */
    const drained = async () => {
      const from = slack.calls.length;
      await drainOutbox(db, poster, log, systemClock);
      return slack.calls.slice(from);
    };
    const approved = async (
      incidentId: number,
      over: Partial<Proposal> & Pick<Proposal, 'kind' | 'target' | 'text'>,
    ) =>
      approvedProposal(
        db,
        { incidentId, why: ATTACK, expects: ATTACK, proposedBy: 'agent', ...over },
        CHANNEL,
      );
    const runner = (over: Partial<RunnerDeps> = {}): RunnerDeps => ({
      now: systemClock,
      db,
      log,
      evidenceDir: join(work, 'evidence'),
      channel: CHANNEL,
      send: async () => {},
      ...over,
    });

    it('alert fields: host, name, summary, mount', async () => {
      await recordDelivery(
        db,
        'generic',
        JSON.stringify({
          host: `db-${ATTACK}`,
          name: `DiskFull ${ATTACK}`,
          summary: ATTACK,
          disk: { mount: `/data ${ATTACK}`, usedPercent: 97 },
        }),
        { channel: CHANNEL },
      );
      const calls = await drained();
      assert.ok(
        calls.some((c) => c.method === 'chat.postMessage' && c.args.thread_ts),
        'the alert reply',
      );
      for (const call of calls.filter((c) => c.method === 'chat.postMessage')) {
        // A URL from outside unfurls no preview of the attacker's page under the bot's message.
        assert.equal(String(call.args.unfurl_links), 'false');
        assert.equal(String(call.args.unfurl_media), 'false');
        assert.equal(String(call.args.link_names), 'false');
      }
      assertInert(calls);
    });

    it("an incident's title from a note, and the answers to commands", async () => {
      const id = await incident(ATTACK);
      // The wall clock, as the bot's; no hosts file, so /investigate starts no collection.
      const { deps } = listenerDeps(db, { log, now: () => new Date(), startCollection: undefined });
      const context = { user: APPROVER, channel: CHANNEL, requestId: 'r1' };
      const answers = [
        await runIncidentCommand(deps, { kind: 'status', incident: id }, context),
        await runIncidentCommand(deps, { kind: 'open', host: `web-x`, note: ATTACK }, context),
        await runIncidentCommand(
          deps,
          { kind: 'help', problem: `"${ATTACK}" is not an incident number` },
          context,
        ),
        await runIncidentCommand(deps, { kind: 'set', status: 'mitigated', incident: id }, context),
      ];
      const calls = await drained();
      assertInert([
        ...calls,
        ...answers.map((text) => ({ method: 'respond', args: { text } }) as unknown as RecordedCall),
      ]);
    });

    it('findings, and the lines of a job that found them or failed', async () => {
      const id = await incident();
      const run = await startJobRun(
        { now: systemClock, db, log },
        'collect-host',
        `q-${id}`,
        id,
        {},
        `started on ${ATTACK}`,
        'collection',
      );
      await run.finish(
        [
          { severity: 'critical', title: ATTACK, detail: ATTACK },
          { severity: 'info', title: 'plain', detail: `core at /tmp/${ATTACK}` },
        ],
        `done: ${ATTACK}`,
      );
      const failed = await startJobRun(
        { now: systemClock, db, log },
        'analyze-evidence',
        `q-${id}-2`,
        id,
        {},
        'started',
        'analysis',
      );
      await failed.fail(new Error(ATTACK));
      assertInert(await drained());
    });

    it('a SQL proposal for a database nobody configured, named by the proposal', async () => {
      const id = await incident();
      const proposal = await approved(id, { kind: 'sql', target: ATTACK, text: 'SELECT 1' });
      await runProposalJob(runner(), { proposalId: proposal.id });
      assertInert(await drained());
    });

    it("a SQL error quoting the query's own text, in the reply and the proposal's message", {
      skip: POSTGRES_URL ? false : 'set DATABASE_URL',
    }, async () => {
      const id = await incident();
      const proposal = await approved(id, {
        kind: 'sql',
        target: 'reports',
        text: `SELECT '${ATTACK}'::int`,
      });
      await runProposalJob(runner({ sqlDatabases: [{ name: 'reports', url: POSTGRES_URL! }] }), {
        proposalId: proposal.id,
      });
      const calls = await drained();
      assert.ok(
        JSON.stringify(calls.map((c) => c.args)).includes('invalid input syntax for type integer'),
        'the error reached the thread',
      );
      assertInert(calls);
    });

    it("a host command's output and errors, short and long (a file with a comment)", async () => {
      const hosts = HostsFileSchema.parse({ hosts: [{ name: 'web-1', address: '127.0.0.1', user: 'ops' }] });
      const ssh = (stdout: string) =>
        ({
          host: () => ({
            exec: async () => ({
              exitCode: 1,
              stdout,
              stderr: `${ATTACK}\n`,
              timedOut: false,
              truncated: false,
              durationMs: 12,
            }),
          }),
        }) as unknown as SshConnections;
      const id = await incident();
      for (const stdout of [`${ATTACK}\n`, `${ATTACK}\n`.repeat(40)]) {
        const proposal = await approved(id, {
          kind: 'script',
          target: 'web-1',
          text: `echo ${stdout.length}`,
        });
        await runProposalJob(runner({ hosts, ssh: ssh(stdout) }), { proposalId: proposal.id });
      }
      const calls = await drained();
      assert.ok(
        calls.some((c) => c.method === 'files.completeUploadExternal'),
        'the long output as a file',
      );
      assertInert(calls);
    });

    it('a pull from a host nobody listed: its target and paths, in the message and the failure', async () => {
      const id = await incident();
      const proposal = await approved(id, { kind: 'pull', target: ATTACK, text: `/var/crash/${ATTACK}` });
      await runProposalJob(runner(), { proposalId: proposal.id });
      assertInert(await drained());
    });

    it("the model's error, when the agent could not finish its turn", async () => {
      const id = await incident();
      anthropic.reset();
      anthropic.reply({ status: 400, type: 'invalid_request_error', message: ATTACK });
      await assert.rejects(
        agentTurnJob({ ...agentDeps(), send: async () => {} }, `job-${id}`, { incidentId: id }),
      );
      const calls = await drained();
      assert.ok(
        calls.some((c) => String(c.args.text).includes('could not finish its turn')),
        'the error reached the thread',
      );
      assertInert(calls);
    });

    it("the agent's closing message and what it looked at", async () => {
      const id = await incident();
      anthropic.reset();
      anthropic.reply(
        toolUse('search_evidence', { pattern: ATTACK }, ATTACK),
        endTurn(`*Found* it. ${ATTACK} and \`\`\`open`),
      );
      const outcome = await runAgentTurn(agentDeps(), id);
      assert.equal(outcome.kind, 'ended');
      const calls = await drained();
      assert.ok(
        calls.some((c) => String(c.args.text).includes('*Found* it.')),
        "the model's bold stays",
      );
      assertInert(calls, { modelCode: true });
    });

    it("a proposal's text, target, reasons and run summary", async () => {
      const id = await incident();
      const proposal = await createProposal(
        db,
        {
          incidentId: id,
          kind: 'script',
          target: ATTACK,
          text: ATTACK,
          why: ATTACK,
          expects: ATTACK,
          proposedBy: ATTACK,
        },
        policy,
        new Date(),
      );
      await queueProposalMessage(db, proposal, CHANNEL, new Date());
      assertInert(await drained());
    });
  });
}
