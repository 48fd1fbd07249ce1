import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { stableJobId } from '../../src/jobs/job-ids.ts';
import { QUEUES } from '../../src/jobs/queues.ts';
import { sweep } from '../../src/jobs/sweeper.ts';
import { createLogger } from '../../src/log.ts';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { alertmanagerDisk as alertmanager } from '../helpers/alert-fixtures.ts';
import { botUrl, postAlert, SIGNING_SECRET } from '../helpers/bot.ts';
import { type CollectingBot, startCollectingBot } from '../helpers/collecting-bot.ts';
import {
  blockActionsBody,
  FAKE_IDS,
  type FakeSlack,
  signedRequest,
  slashCommandBody,
} from '../helpers/fake-slack.ts';
import type { Podman } from '../helpers/podman.ts';
import { APPROVER } from '../helpers/proposals.ts';
import { until } from '../helpers/wait.ts';

/**
 * The whole collection on a disk alert: Alertmanager's payload for web-1 opens an incident, the
 * bot collects on web-1 over SSH (a real sshd, the Docker CLI against a real Podman engine whose container crashed and wrote a core), and the
 * findings land in the incident's thread in Slack (the fake).
 */

/** The incident a root message's buttons name. */
const incidentIdOf = (root: { text?: string }) => Number(/#(\d+)/.exec(root.text ?? '')![1]);

describe('a disk alert starts collection on the host', () => {
  let slack: FakeSlack;
  let db: Db;
  let bot: Bot;
  let rootTs: string;
  let podman: Podman;
  let containerId: string;
  let host: CollectingBot;

  before(async () => {
    host = await startCollectingBot({
      name: 'disk-alert',
      containers: async (engine) => {
        // As `docker ps -q` names it, which is what the collection and the pull list use.
        containerId = (await engine.crashingContainer({ dir: '/app', running: true })).slice(0, 12);
      },
      hosts: (work) => [
        { name: 'web-1', labels: ['web-1:9100'], coreSearchPaths: [work] },
        { name: 'db-1', coreSearchPaths: [work] },
      ],
    });
    ({ slack, db, bot, podman } = host);
  });
  after(async () => {
    await host?.close();
  });

  it('posts what it found on web-1 to the incident thread', async () => {
    const res = await postAlert(bot, 'alertmanager', alertmanager);
    assert.equal(res.status, 202);
    const root = await until('the root', () =>
      (slack.messages.get(FAKE_IDS.channel) ?? []).find((m) => /Disk \/ filling on web-1/.test(m.text ?? '')),
    );
    rootTs = root.ts;
    const thread = await until(
      'the collection findings',
      () => {
        const replies = slack.thread(FAKE_IDS.channel, root.ts);
        return replies.some((m) => /Collection on web-1 done/.test(m.text ?? '')) ? replies : undefined;
      },
      60_000,
    );
    // One status message, edited in place from "collecting" to the counts.
    const status = thread.find((m) => /Progress on #\d+/.test(JSON.stringify(m.blocks)))!;
    assert.match(status.text ?? '', /Collection on web-1 done: \d+ finding\(s\), 1 core file\(s\)/);
    assert.match(status.history[0]?.text ?? '', /Collecting on web-1 over SSH/);
    // The findings in one reply.
    const found = thread.filter((m) => /What the collection found on web-1/.test(m.text ?? ''));
    assert.equal(found.length, 1);
    const texts = thread.map((m) => m.text ?? '');
    assert.ok(
      texts.some((t) => /1 core dump in containers/.test(t)),
      texts.join('\n---\n'),
    );
    assert.ok(texts.some((t) => /How this host writes core dumps/.test(t)));
    const { rows } = await db.executeSql<{ n: number }>(
      `SELECT count(*)::int AS n FROM findings WHERE kind = 'collect-host'`,
    );
    assert.ok(rows[0]!.n >= 3);
  });

  const proposalMessage = () =>
    until(
      'the pull proposal',
      () =>
        slack
          .thread(FAKE_IDS.channel, rootTs)
          .find((m) => /^Proposal #\d+ \(pull from host web-1\)/.test(m.text ?? '')),
      60_000,
    );
  const approveButton = (message: { blocks?: unknown[] }) => {
    const actions = (
      message.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>
    ).find((b) => b.type === 'actions');
    return actions?.elements?.find((e) => e.action_id === 'proposal_approve');
  };
  const click = (user: string, message: { ts: string }, value: string, responseUrl: string) =>
    signedRequest(
      botUrl(bot, '/slack/events'),
      SIGNING_SECRET,
      blockActionsBody({
        user,
        actions: [{ action_id: 'proposal_approve', value }],
        message: { ts: message.ts },
        channel: FAKE_IDS.channel,
        response_url: responseUrl,
      }),
    );

  it('proposes to pull the cores it found, showing the exact list, and waits for an approver', async () => {
    const message = await proposalMessage();
    const shown = JSON.stringify(message.blocks);
    assert.match(shown, new RegExp(`${containerId}:/app/core\\b`));
    assert.match(shown, /Waiting for approval: 0 of 1/);
    assert.match(shown, /core file\(s\), [\d.]+ [KMG]iB/);
    assert.ok(approveButton(message), 'an Approve button');
    const { rows } = await db.executeSql<{ state: string }>(
      `SELECT state FROM proposals WHERE kind = 'pull'`,
    );
    assert.deepEqual(rows, [{ state: 'pending' }]);
  });

  it('tells someone who is not an approver so, and changes nothing', async () => {
    const message = await proposalMessage();
    const responseUrl = slack.responseUrl();
    const res = await click('U0STRANGER', message, approveButton(message)!.value, responseUrl);
    assert.equal(res.status, 200);
    const answer = await until('the ephemeral refusal', () =>
      slack.responses.find((r) => r.url === responseUrl),
    );
    assert.match(JSON.stringify(answer.body), /not an approver/);
    const { rows } = await db.executeSql<{ n: number }>('SELECT count(*)::int AS n FROM runs');
    assert.equal(rows[0]!.n, 0);
    const refused = await db.executeSql<{ actor: string }>(
      `SELECT actor FROM audit_log WHERE action = 'proposal.decision_refused'`,
    );
    assert.deepEqual(refused.rows, [{ actor: 'U0STRANGER' }]);
  });

  it('pulls once on a double click by an approver, edits its progress in place, then posts the analysis', async () => {
    const message = await proposalMessage();
    const value = approveButton(message)!.value;
    const [a, b] = await Promise.all([
      click(APPROVER, message, value, slack.responseUrl()),
      click(APPROVER, message, value, slack.responseUrl()),
    ]);
    assert.deepEqual([a.status, b.status], [200, 200]);
    const thread = await until(
      'the analysis of what was pulled',
      () => {
        const replies = slack.thread(FAKE_IDS.channel, rootTs);
        return replies.some((m) => /Analysis done: \d+ dumps?/.test(m.text ?? '')) ? replies : undefined;
      },
      90_000,
    );
    const texts = thread.map((m) => m.text ?? '');
    assert.ok(
      texts.some((t) => /^:white_check_mark: Pulled (\d+) of \1 file\(s\) from web-1/.test(t)),
      texts.join('\n---\n'),
    );
    assert.ok(
      texts.some((t) => /SIGABRT/.test(t)),
      'the analysis names the signal',
    );
    const runs = await db.executeSql<{ n: number }>('SELECT count(*)::int AS n FROM runs');
    assert.equal(runs.rows[0]!.n, 1, 'one run for two clicks');
    const artifacts = await db.executeSql<{ state: string; sha256: string | null }>(
      `SELECT state, sha256 FROM evidence_artifacts WHERE container = $1`,
      [containerId],
    );
    assert.equal(artifacts.rows[0]!.state, 'complete');
    assert.match(artifacts.rows[0]!.sha256 ?? '', /^[0-9a-f]{64}$/);
    // The proposal's own message now says it is done, with who approved it; no buttons left.
    const updated = await until('the proposal message to say done', () => {
      const m = slack.message(FAKE_IDS.channel, message.ts);
      return m && /Done/.test(m.text ?? '') ? m : undefined;
    });
    assert.match(JSON.stringify(updated.blocks), new RegExp(`Approved by <@${APPROVER}>`));
    assert.equal(approveButton(updated), undefined);
    // The pull's progress is the status message's line, edited in place, never a reply of its own.
    // (The outbox sends an edit's latest version: a pull this small may be done before its
    // "Pulling" line is ever shown, so the lines it ends with are what is checked.)
    const progress = thread.find((m) => /Progress on #\d+/.test(JSON.stringify(m.blocks)));
    assert.ok(progress, 'a progress message');
    assert.ok(progress.history.length >= 1, 'edited in place');
    assert.match(JSON.stringify(progress.blocks), /Pulled 1 of 1 file\(s\) from web-1/);
    assert.match(progress.text ?? '', /Analysis done: 1 dump/);
    assert.equal(thread.filter((m) => /Pulling|Analysing/.test(m.text ?? '')).length, 0);
    // The pull's own trail (freeing the disk and the guard are proposed after it).
    const audit = await db.executeSql<{ action: string }>(
      `SELECT action FROM audit_log WHERE (action LIKE 'proposal.%' OR action LIKE 'run.%')
         AND subject->>'proposal' IN (SELECT id::text FROM proposals WHERE kind = 'pull') ORDER BY id`,
    );
    // The second click's refusal may be recorded before or after the run starts (a sent job
    // wakes the runner at once); what matters is one approval, one run, in this order.
    const actions = audit.rows.map((r) => r.action);
    assert.deepEqual(
      actions.filter((a) => a !== 'proposal.decision_refused'),
      ['proposal.created', 'proposal.approved', 'run.started', 'run.finished', 'run.result_posted'],
    );
    assert.equal(actions.filter((a) => a === 'proposal.decision_refused').length, 2, actions.join(', '));
    assert.ok(actions.indexOf('proposal.decision_refused') < actions.indexOf('proposal.approved'));
  });

  it('keeps the thread short: a few replies before the pull proposal, one status message edited through every phase', async () => {
    const thread = slack.thread(FAKE_IDS.channel, rootTs);
    const proposal = thread.findIndex((m) => /^Proposal #\d+ \(pull from host web-1\)/.test(m.text ?? ''));
    assert.ok(proposal >= 0);
    // Issue 17's goal: at most 5 replies before the first decision (it was 9, and 19 in all).
    const before = thread.slice(0, proposal);
    assert.ok(before.length <= 5, before.map((m) => m.text).join('\n---\n'));
    // In all: those, the pull proposal and its result, the answer and its file, then the two
    // proposals that stop the bleeding (free the disk, guard against the next crash).
    assert.ok(thread.length <= 12, thread.map((m) => m.text).join('\n---\n'));
    const root = slack.message(FAKE_IDS.channel, rootTs)!;
    assert.match(JSON.stringify(root.blocks), /2 firing/);
    const status = thread.filter((m) => /Progress on #\d+/.test(JSON.stringify(m.blocks)));
    assert.equal(status.length, 1, 'one status message');
    const shown = [...status[0]!.history.map((h) => h.text ?? ''), status[0]!.text ?? ''];
    for (const phase of [/Collecting on web-1/, /Collection on web-1 done/, /Pull(ing|ed)/, /Analysis done/])
      assert.ok(
        shown.some((t) => phase.test(t)),
        `${phase} in ${shown.join(' | ')}`,
      );
    // Every phase's final line is on it at the end.
    const last = JSON.stringify(status[0]!.blocks);
    assert.match(last, /Collection on web-1 done/);
    assert.match(last, /Pulled 1 of 1 file\(s\) from web-1/);
    assert.match(last, /Analysis done: 1 dump/);
  });

  it("links the root back to the alert, shows the analysis's headline, and its buttons change the incident as the commands do", async () => {
    const root = () => slack.message(FAKE_IDS.channel, rootTs)!;
    const shown = await until('the headline on the root', () => {
      const blocks = JSON.stringify(root().blocks);
      return /\*Found:\* 1 of 1 dumps died of SIGABRT/.test(blocks) ? blocks : undefined;
    });
    assert.ok(
      shown.includes(
        '<http://prometheus.internal:9090/graph?g0.expr=%28node_filesystem_avail_bytes%7Bfstype%21%3D%22%22%2Cjob%3D%22node%22%7D+%2F+node_filesystem_size_bytes%29|Alert source>',
      ),
      shown,
    );
    const silence = `http://alertmanager.internal:9093/#/silences/new?filter=${encodeURIComponent(
      '{alertname="NodeFilesystemAlmostOutOfSpace", device="/dev/vda1", fstype="ext4", instance="web-1:9100", job="node", mountpoint="/", severity="critical"}',
    )}`;
    assert.ok(shown.includes(`<${silence}|Silence in Alertmanager>`), shown);
    const press = async (user: string, action: string) => {
      const responseUrl = slack.responseUrl();
      const res = await signedRequest(
        botUrl(bot, '/slack/events'),
        SIGNING_SECRET,
        blockActionsBody({
          user,
          actions: [{ action_id: action, value: String(incidentIdOf(root())) }],
          message: { ts: rootTs },
          channel: FAKE_IDS.channel,
          response_url: responseUrl,
        }),
      );
      assert.equal(res.status, 200);
      const answer = await until(`the answer to ${action}`, () =>
        slack.responses.find((r) => r.url === responseUrl),
      );
      return JSON.stringify(answer.body);
    };
    const buttons = () =>
      (
        (root().blocks as Array<{ type: string; elements?: Array<{ action_id: string }> }>).find(
          (b) => b.type === 'actions',
        )?.elements ?? []
      ).map((e) => e.action_id);
    assert.deepEqual(buttons(), ['incident_take_command', 'incident_mitigated', 'incident_resolve']);

    assert.match(await press('U0ONCALL', 'incident_take_command'), /You are the commander of #1/);
    await until('the commander on the root', () =>
      /\*Commander:\* <@U0ONCALL>/.test(JSON.stringify(root().blocks)) ? true : undefined,
    );
    assert.match(await press('U0ONCALL', 'incident_mitigated'), /#1 is now mitigated/);
    await until('mitigated on the root, its button gone', () =>
      /\*Status:\* mitigated/.test(JSON.stringify(root().blocks)) && !buttons().includes('incident_mitigated')
        ? true
        : undefined,
    );
    await until('the change in the thread', () =>
      slack
        .thread(FAKE_IDS.channel, rootTs)
        .find((m) => /<@U0ONCALL> set #1 to \*mitigated\*/.test(m.text ?? '')),
    );
    assert.match(await press('U0ONCALL', 'incident_resolve'), /#1 is now resolved/);
    await until('no buttons once resolved', () => (buttons().length === 0 ? true : undefined));
    // A button pressed on a stale screen: the same refusal as the command, to the presser alone.
    assert.match(await press('U0STRANGER', 'incident_mitigated'), /is resolved; it cannot become mitigated/);
    assert.match(await press('U0STRANGER', 'incident_take_command'), /is resolved/);
    const { rows } = await db.executeSql<{ status: string; commander: string }>(
      'SELECT status, commander FROM incidents WHERE id = 1',
    );
    assert.deepEqual(rows, [{ status: 'resolved', commander: 'U0ONCALL' }]);
  });

  it('catches up on a collection lost between an alert and its send, and queues it once', async () => {
    const { rows } = await db.executeSql<{ id: string }>(
      `INSERT INTO incidents (group_key, host, problem, title, opened_by, opened_at)
       VALUES ('web-1:disk:lost', 'web-1', 'disk', 'Disk / filling on web-1 (lost)', 'test', now() - interval '5 minutes')
       RETURNING id`,
    );
    const incidentId = Number(rows[0]!.id);
    const sent: Array<string | null> = [];
    const startCollection = async (id: number, host: string) => {
      sent.push(
        await bot.boss.send(
          QUEUES.collectHost.name,
          { incidentId: id, host },
          { id: stableJobId(`collect-host:${id}`) },
        ),
      );
    };
    const log = createLogger({ level: 'silent' });
    const first = await sweep({ now: systemClock, db, log, evidenceDays: 14, startCollection }, new Date());
    assert.ok(first.collections >= 1, 'the sweep saw no collection yet');
    // A second bot process that read the same rows sends it again: the job id makes it one job.
    // (A second sweep here could already see the job's row: a sent job wakes its worker at once.)
    await startCollection(incidentId, 'web-1');
    assert.equal(sent.filter((id) => id !== null).length, 1, 'one job for two sends');
    await until(
      'the caught-up collection',
      async () => {
        const jobs = await db.executeSql<{ state: string }>(
          `SELECT state FROM jobs WHERE incident_id = $1 AND kind = 'collect-host'`,
          [incidentId],
        );
        return jobs.rows.length === 1 && jobs.rows[0]!.state === 'succeeded';
      },
      60_000,
    );
    const third = await sweep({ now: systemClock, db, log, evidenceDays: 14, startCollection }, new Date());
    assert.equal(third.collections, 0);
  });

  const investigate = async (text: string, user: string) => {
    const responseUrl = slack.responseUrl();
    const res = await signedRequest(
      botUrl(bot, '/slack/events'),
      SIGNING_SECRET,
      slashCommandBody({ text, user_id: user, response_url: responseUrl }),
    );
    assert.equal(res.status, 200);
    const answer = await until('the ephemeral answer', () =>
      slack.responses.find((r) => r.url === responseUrl),
    );
    return JSON.stringify(answer.body);
  };

  it('/investigate <host> opens an incident and starts the same collection as a disk alert', async () => {
    const answer = await investigate('db-1 slow checkouts', 'U0ONCALL');
    assert.match(
      answer,
      /Opened incident #\d+ for db-1 .*; collecting on db-1 over SSH, as for a disk alert/,
    );
    const root = await until('the root', () =>
      (slack.messages.get(FAKE_IDS.channel) ?? []).find((m) => /db-1: slow checkouts/.test(m.text ?? '')),
    );
    const thread = await until(
      'the collection on db-1',
      () => {
        const replies = slack.thread(FAKE_IDS.channel, root.ts);
        return replies.some((m) => /Collection on db-1 done/.test(m.text ?? '')) ? replies : undefined;
      },
      60_000,
    );
    const texts = thread.map((m) => m.text ?? '');
    // Its status message went from collecting to done, edited in place.
    assert.ok(
      thread.some((m) => m.history.some((h) => /Collecting on db-1 over SSH/.test(h.text ?? ''))),
      texts.join('\n---\n'),
    );
    assert.ok(
      texts.some((t) => /1 core dump in containers/.test(t)),
      texts.join('\n---\n'),
    );
    // And what follows a disk alert's collection: the proposal to pull the core it found.
    const proposal = await until(
      'the pull proposal on db-1',
      () =>
        slack
          .thread(FAKE_IDS.channel, root.ts)
          .find((m) => /^Proposal #\d+ \(pull from host db-1\)/.test(m.text ?? '')),
      60_000,
    );
    assert.match(JSON.stringify(proposal.blocks), new RegExp(`${containerId}:/app/core\\b`));
    const { rows } = await db.executeSql<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs j JOIN incidents i ON i.id = j.incident_id
       WHERE i.host = 'db-1' AND i.problem = 'manual' AND j.kind = 'collect-host'`,
    );
    assert.equal(rows[0]!.n, 1);
  });

  it('/investigate <host> on its open incident joins it, keeps the note, and collects nothing again', async () => {
    const before = await db.executeSql<{ id: string; root_ts: string }>(
      `SELECT id, root_ts FROM incidents WHERE host = 'db-1' AND status <> 'resolved'`,
    );
    const answer = await investigate('db-1 the *cache* <!channel> too?', 'U0SECOND');
    assert.match(
      answer,
      new RegExp(
        `db-1 already has incident #${before.rows[0]!.id} \\(\\w+\\); joined it, your note is in its thread`,
      ),
    );
    const note = await until('the note in the thread', () =>
      slack
        .thread(FAKE_IDS.channel, before.rows[0]!.root_ts)
        .find((m) => /joined with \/investigate/.test(m.text ?? '')),
    );
    // The asker's words as text: no channel ping.
    assert.equal(note.text, '<@U0SECOND> joined with /investigate: the *cache* &lt;!channel&gt; too?');
    const audit = await db.executeSql<{ actor: string; subject: { note: string } }>(
      `SELECT actor, subject FROM audit_log WHERE action = 'incident.joined'`,
    );
    assert.deepEqual(audit.rows, [
      { actor: 'U0SECOND', subject: { via: 'slash_command', note: 'the *cache* <!channel> too?' } },
    ]);
    const jobs = await db.executeSql<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs j JOIN incidents i ON i.id = j.incident_id
       WHERE i.host = 'db-1' AND j.kind = 'collect-host'`,
    );
    assert.equal(jobs.rows[0]!.n, 1);
    const incidents = await db.executeSql<{ n: number }>(
      `SELECT count(*)::int AS n FROM incidents WHERE host = 'db-1'`,
    );
    assert.equal(incidents.rows[0]!.n, 1);
  });
  it('last (it deletes the core the others find): proposes freeing the disk after the pull: a stranger cannot, an approval deletes the core in the container and shows the disk before → after', async () => {
    const message = await until(
      'the free proposal',
      () =>
        slack
          .thread(FAKE_IDS.channel, rootTs)
          .find((m) => /^Proposal #\d+ \(delete pulled cores on host web-1/.test(m.text ?? '')),
      60_000,
    );
    const shown = JSON.stringify(message.blocks);
    assert.match(shown, new RegExp(`${containerId}:/app/core`));
    assert.match(shown, /deletes files/);
    assert.match(shown, /Frees up to [\d.]+ [KMG]iB on web-1/);
    // The guard is proposed too: this host's core_pattern is a plain `core`.
    await until('the guard proposal', () =>
      slack
        .thread(FAKE_IDS.channel, rootTs)
        .find(
          (m) =>
            /^Proposal #\d+ \(on host web-1/.test(m.text ?? '') &&
            /core_pattern/.test(JSON.stringify(m.blocks)),
        ),
    );
    const { rows: free } = await db.executeSql<{ id: string }>(
      `SELECT id FROM proposals WHERE kind = 'free'`,
    );
    assert.equal(free.length, 1);
    const inContainer = () => podman.docker(['exec', containerId, 'stat', '-c', '%s', '/app/core']);
    const size = Number((await inContainer()).trim());
    assert.ok(size > 0);

    const refusal = slack.responseUrl();
    await click('U0STRANGER', message, approveButton(message)!.value, refusal);
    const answer = await until('the ephemeral refusal', () => slack.responses.find((r) => r.url === refusal));
    assert.match(JSON.stringify(answer.body), /not an approver/);
    const none = await db.executeSql<{ n: number }>(
      'SELECT count(*)::int AS n FROM runs WHERE proposal_id = $1',
      [free[0]!.id],
    );
    assert.equal(none.rows[0]!.n, 0, 'no run for a stranger');
    assert.equal(Number((await inContainer()).trim()), size, 'the core is still there');

    await click(APPROVER, message, approveButton(message)!.value, slack.responseUrl());
    const result = await until(
      'the free result',
      () => slack.thread(FAKE_IDS.channel, rootTs).find((m) => /^:broom: Deleted /.test(m.text ?? '')),
      60_000,
    );
    assert.match(result.text ?? '', /Deleted 1 of 1 file\(s\) on web-1/);
    assert.match(result.text ?? '', /Disk \/[^:]*: \d+% → \d+% used/);
    await assert.rejects(inContainer(), 'the core is gone from the container');
    const run = await db.executeSql<{ state: string; freed: string }>(
      `SELECT state, result->>'freedBytes' AS freed FROM runs WHERE proposal_id = $1`,
      [free[0]!.id],
    );
    assert.deepEqual(run.rows, [{ state: 'succeeded', freed: String(size) }]);
    const trail = await db.executeSql<{ action: string; actor: string }>(
      `SELECT action, actor FROM audit_log WHERE subject->>'proposal' = $1 ORDER BY id`,
      [free[0]!.id],
    );
    assert.deepEqual(
      trail.rows.map((r) => `${r.action} ${r.actor}`),
      [
        'proposal.created nightshift',
        'proposal.decision_refused U0STRANGER',
        `proposal.approved ${APPROVER}`,
        'run.started nightshift',
        'evidence.deleted nightshift',
        'run.finished nightshift',
        'run.result_posted nightshift',
      ],
    );
  });
});
