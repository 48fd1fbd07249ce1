import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { alertmanagerDisk as alertmanager } from '../helpers/alert-fixtures.ts';
import { botUrl, postAlert, SIGNING_SECRET } from '../helpers/bot.ts';
import { type CollectingBot, startCollectingBot } from '../helpers/collecting-bot.ts';
import { blockActionsBody, FAKE_IDS, type FakeSlack, signedRequest } from '../helpers/fake-slack.ts';
import { APPROVER } from '../helpers/proposals.ts';
import { until } from '../helpers/wait.ts';

/**
 * An approved pull is analysed as its bytes arrive, through the whole bot: four containers of a
 * real Podman engine crashed (three of them holding the radio URL), behind a real sshd; the
 * alert's collection proposes the pull, an approver approves it, and the analysis job starts while
 * the pull still runs, reading each file as it lands (evidence/follow.ts). Its line in the
 * incident's status message shows the headline so far, edited in place, until it is done.
 */
const STREAM = 'http://radio.nightshift.test:8000/live/stream.mp3';
const FEED = 'https://feeds.nightshift.test/morning-news/rss.xml';

describe('an approved pull is analysed as it arrives', () => {
  let slack: FakeSlack;
  let db: Db;
  let bot: Bot;
  let host: CollectingBot;

  before(async () => {
    host = await startCollectingBot({
      name: 'pull-analysis',
      containers: async (podman) => {
        for (const url of [STREAM, STREAM, FEED, STREAM])
          await podman.crashingContainer({ dir: '/app', running: true, coreMiB: 24, args: [`GET ${url}`] });
      },
      hosts: (work) => [{ name: 'web-1', labels: ['web-1:9100'], coreSearchPaths: [work] }],
    });
    ({ slack, db, bot } = host);
  });
  after(async () => {
    await host?.close();
  });

  it('starts the analysis while the pull runs and edits the headline in place until final', async () => {
    const res = await postAlert(bot, 'alertmanager', alertmanager);
    assert.equal(res.status, 202);
    const root = await until('the root', () =>
      (slack.messages.get(FAKE_IDS.channel) ?? []).find((m) => /Disk \/ filling on web-1/.test(m.text ?? '')),
    );
    const thread = () => slack.thread(FAKE_IDS.channel, root.ts);
    const proposal = await until(
      'the pull proposal',
      () => thread().find((m) => /^Proposal #\d+ \(pull from host web-1\)/.test(m.text ?? '')),
      90_000,
    );
    assert.match(JSON.stringify(proposal.blocks), /4 core file\(s\)/);
    const actions = (
      proposal.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>
    ).find((b) => b.type === 'actions');
    const approve = actions?.elements?.find((e) => e.action_id === 'proposal_approve');
    assert.ok(approve);
    const click = await signedRequest(
      botUrl(bot, '/slack/events'),
      SIGNING_SECRET,
      blockActionsBody({
        user: APPROVER,
        actions: [{ action_id: 'proposal_approve', value: approve.value }],
        message: { ts: proposal.ts },
        channel: FAKE_IDS.channel,
        response_url: slack.responseUrl(),
      }),
    );
    assert.equal(click.status, 200);
    await until(
      'the analysis done',
      () => thread().some((m) => /Analysis done: 4 dumps/.test(m.text ?? '')),
      120_000,
    );
    // The answer: the headline, the stream's URL plain on its own line. A message of its own,
    // which the outbox may post after the status line's edit that says the analysis is done.
    const answered = (t: string) =>
      t.includes('Likely endless stream in 3 of 4 dumps:') && t.includes(`\n${STREAM}`);
    await until('the answer', () => thread().some((m) => answered(m.text ?? '')), 30_000).catch(() => {
      assert.fail(
        thread()
          .map((m) => m.text ?? '')
          .join('\n---\n'),
      );
    });
    // The pull's run is finished in the store by the time its reply is posted.
    await until('the pull run finished', async () => {
      const { rows } = await db.executeSql<{ n: number }>(
        'SELECT count(*)::int AS n FROM runs WHERE finished_at IS NOT NULL',
      );
      return rows[0]!.n > 0;
    });

    // The analysis job began before the pull's run ended: it read the files as they came in.
    const { rows } = await db.executeSql<{ analysis: Date; pulled: Date }>(
      `SELECT (SELECT min(started_at) FROM jobs WHERE kind = 'analyze-evidence') AS analysis,
              (SELECT max(finished_at) FROM runs) AS pulled`,
    );
    assert.ok(
      new Date(rows[0]!.analysis) < new Date(rows[0]!.pulled),
      `analysis started ${new Date(rows[0]!.analysis).toISOString()}, pull ended ${new Date(rows[0]!.pulled).toISOString()}`,
    );
    const input = await db.executeSql<{ input: { follow?: boolean; paths: string[] } }>(
      `SELECT input FROM jobs WHERE kind = 'analyze-evidence'`,
    );
    assert.equal(input.rows.length, 1, 'one analysis of the batch');
    assert.equal(input.rows[0]!.input.follow, true);

    // Its line in the status message: started, then the headline so far (edited in place), then
    // done. The outbox sends an edit's latest version, so which of the lines in between Slack
    // showed depends on timing; each one shown has the form below, and the last says done.
    const status = await until('the analysis done on the status message', () =>
      thread().find(
        (m) =>
          /Progress on #\d+/.test(JSON.stringify(m.blocks)) && /Analysis done: 4 dumps/.test(m.text ?? ''),
      ),
    );
    const shown = [...status.history.map((h) => h.text ?? ''), status.text ?? ''];
    for (const t of shown.filter((t) => /so far/.test(t)))
      assert.match(
        t,
        /Analysing 4 files as they are pulled.*: so far, .*\(\d dumps, ([123] of 4 files analysed|all 4 files analysed, making the counts exact)\)/,
      );
    // Edited in place in the store: the analysis's line went through its headlines so far.
    const edits = await db.executeSql<{ version: number }>(
      `SELECT version::int AS version FROM thread_messages WHERE dedup_key LIKE 'status:%'`,
    );
    assert.equal(edits.rows.length, 1);
    assert.ok(edits.rows[0]!.version >= 4, `version ${edits.rows[0]!.version}`);
  });
});
