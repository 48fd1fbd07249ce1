import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getProposal } from '../../src/approvals/service.ts';
import { systemClock } from '../../src/clock.ts';
import { sweep } from '../../src/jobs/sweeper.ts';
import { createLogger } from '../../src/log.ts';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { CHANNEL, deliverEvent, type IncidentBot, reactOn, startIncidentBot } from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';
import { eventCallbackBody, type FakeSlack, reactionAddedEvent } from '../helpers/fake-slack.ts';
import { APPROVER } from '../helpers/proposals.ts';
import { until } from '../helpers/wait.ts';

/**
 * Proposals in the incident thread, decided from a phone with reactions: ✅ approves and starts
 * the one run, ❌ rejects, someone who may not decide is told so privately; expiry and evidence
 * retention are swept. Against the fake Slack with signed events, on both databases.
 */

for (const database of testDatabases()) {
  describe(`proposals decided with reactions on ${database.name}`, () => {
    let slack: FakeSlack;
    let db: Db;
    let bot: Bot;
    let work: string;
    let incidentId: number;
    let fixture: IncidentBot;
    let reactions = 0;

    before(async () => {
      fixture = await startIncidentBot(database, { name: 'proposals', host: 'web-9', note: 'disk' });
      ({ slack, db, bot, work, incidentId } = fixture);
    });
    after(async () => {
      await fixture.close();
    });

    /** A pull proposal from a host that is not in any hosts file: approved, its run fails cleanly. */
    const propose = (text: string, now = new Date()) =>
      fixture.propose({ kind: 'pull', target: 'web-9', text }, now);
    const react = (user: string, reaction: string, ts: string) =>
      reactOn(bot, { user, name: reaction, ts }, `Ev0REACT${String(++reactions).padStart(4, '0')}`);

    /** Waits for the proposal's run to end (failed or done) and checks there was exactly one. */
    const ranOnce = async (proposal: { id: number }) => {
      await until('the run to end', async () => {
        const p = await getProposal(db, proposal.id);
        return p && (p.state === 'failed' || p.state === 'done') ? p : undefined;
      });
      const runs = await db.executeSql<{ n: number }>(
        'SELECT count(*)::int AS n FROM runs WHERE proposal_id = $1',
        [proposal.id],
      );
      assert.equal(runs.rows[0]!.n, 1);
    };

    it('approves with ✅ from an approver and runs it once, even when Slack retries the event', async () => {
      const { proposal, message } = await propose('/var/crash/core.1');
      const body = eventCallbackBody(
        reactionAddedEvent({
          user: APPROVER,
          reaction: 'white_check_mark',
          item: { type: 'message', channel: CHANNEL, ts: message.ts },
        }),
        { eventId: 'Ev0RETRIED1' },
      );
      assert.equal((await deliverEvent(bot, body)).status, 200);
      assert.equal((await deliverEvent(bot, body, true)).status, 200);
      // The host is in no hosts file, so the run ends failed, saying why: but it ran, once.
      await ranOnce(proposal);
      const approvals = await db.executeSql<{ decided_by: string; via: string }>(
        'SELECT decided_by, via FROM approvals WHERE proposal_id = $1',
        [proposal.id],
      );
      assert.deepEqual(approvals.rows, [{ decided_by: APPROVER, via: 'reaction' }]);
      const updated = await until('the message edited to failed', () => {
        const m = slack.message(CHANNEL, message.ts);
        return m && /Failed/.test(m.text ?? '') ? m : undefined;
      });
      assert.match(JSON.stringify(updated.blocks), /not in the hosts file/);
      assert.match(JSON.stringify(updated.blocks), new RegExp(`Approved by <@${APPROVER}>`));
    });

    it('runs what was approved even when Slack refuses to edit its message', async () => {
      const { proposal, message } = await propose('/var/crash/core.5');
      // Every edit of it fails until the run has ended; nothing else is affected.
      const stop = slack.failWhen('chat.update', (args) => args.ts === message.ts, {
        error: 'message_not_found',
      });
      await react(APPROVER, 'white_check_mark', message.ts);
      await ranOnce(proposal);
      // The queued body is current even though Slack refused the edits. (The run's end is
      // recorded before its message is edited, so the body is waited for, not read once.)
      await until('the queued body to say failed', async () => {
        const body = await db.executeSql<{ body: { text: string } | string }>(
          'SELECT body FROM thread_messages WHERE dedup_key = $1',
          [`proposal:${proposal.id}`],
        );
        const raw = body.rows[0]!.body;
        return /Failed/.test(typeof raw === 'string' ? JSON.parse(raw).text : raw.text);
      });
      assert.doesNotMatch(
        slack.message(CHANNEL, message.ts)!.text ?? '',
        /Failed/,
        'Slack refused every edit',
      );
      stop();
    });

    it("never leaves the message behind its run when the approval's edit is slow to reach Slack", async () => {
      const { proposal, message } = await propose('/var/crash/core.6');
      // The first edit of the message (the approval's, or the run's when it was quicker) is held
      // on its way to Slack; whatever comes after it is carried out first.
      const slow = slack.holdWhen('chat.update', (args) => args.ts === message.ts);
      await react(APPROVER, 'white_check_mark', message.ts);
      const held = await slow.reached;
      await until('the run to end', async () => {
        const p = await getProposal(db, proposal.id);
        return p && (p.state === 'failed' || p.state === 'done') ? p : undefined;
      });
      // Time for the run's own edits to reach Slack, had they been sent.
      await new Promise((resolve) => setTimeout(resolve, 300));
      slow.release();
      await until('the held edit to be answered', () => held.response !== undefined);
      const ORDER = ['Waiting for approval', 'Approved', 'Running', 'Failed'];
      const stateOf = (text: string | undefined) => (text ?? '').slice((text ?? '').lastIndexOf('): ') + 3);
      const m = await until(
        'the message to show the end',
        () => {
          const m = slack.message(CHANNEL, message.ts);
          return m && stateOf(m.text) === 'Failed' ? m : undefined;
        },
        5000,
      ).catch((error: Error) => {
        throw new Error(`${error.message}; Slack shows: ${slack.message(CHANNEL, message.ts)?.text}`);
      });
      const shown = [...m.history.map((h) => h.text), m.text].map((t) => ORDER.indexOf(stateOf(t)));
      assert.ok(
        shown.every((rank, i) => rank >= 0 && (i === 0 || rank >= shown[i - 1]!)),
        `the message stepped back: ${[...m.history.map((h) => h.text), m.text].map(stateOf).join(' → ')}`,
      );
    });

    it('rejects with ❌, and a later ✅ changes nothing', async () => {
      const { proposal, message } = await propose('/var/crash/core.2');
      await react(APPROVER, 'x', message.ts);
      await until('rejected', async () => (await getProposal(db, proposal.id))?.state === 'rejected');
      await react(APPROVER, 'white_check_mark', message.ts);
      await until('the ephemeral answer', () =>
        slack.ephemerals.find((e) => e.user === APPROVER && /already rejected/.test(e.text ?? '')),
      );
      const runs = await db.executeSql<{ n: number }>(
        'SELECT count(*)::int AS n FROM runs WHERE proposal_id = $1',
        [proposal.id],
      );
      assert.equal(runs.rows[0]!.n, 0);
      const m = await until('the message edited to rejected', () => {
        const m = slack.message(CHANNEL, message.ts);
        return m && /Rejected/.test(m.text ?? '') ? m : undefined;
      });
      assert.ok(!JSON.stringify(m.blocks).includes('proposal_approve'), 'no buttons once decided');
    });

    it('tells someone who is not an approver so, privately, and changes nothing', async () => {
      const { proposal, message } = await propose('/var/crash/core.3');
      await react('U0STRANGER', 'white_check_mark', message.ts);
      const answer = await until('the ephemeral answer', () =>
        slack.ephemerals.find((e) => e.user === 'U0STRANGER'),
      );
      assert.match(answer.text ?? '', /not an approver/);
      assert.equal(answer.channel, CHANNEL);
      // In the proposal's thread, named by its parent (the incident's root) as Slack asks, not by
      // the proposal message, which is itself a reply.
      const root = await db.executeSql<{ root_ts: string }>('SELECT root_ts FROM incidents WHERE id = $1', [
        incidentId,
      ]);
      assert.ok(root.rows[0]!.root_ts);
      assert.equal(answer.thread_ts, root.rows[0]!.root_ts);
      assert.equal((await getProposal(db, proposal.id))!.state, 'pending');
    });

    it('sends a text that renders long to a file with its hash, in a message Slack takes, which ✅ approves', async () => {
      // 20,000 zero-width spaces rendered as 62 blocks: Slack refuses over 50, nobody could approve.
      const text = `/var/crash/core.6${'\u200b'.repeat(20_000)}`;
      const { proposal, message } = await propose(text);
      assert.ok((message.blocks ?? []).length <= 50, `${message.blocks?.length} blocks`);
      const file = await until('the text as a file', () =>
        slack.files.find((f) => f.filename === `proposal-${proposal.id}.txt` && f.completed),
      );
      assert.equal(file.bytes!.toString('utf8'), text, 'the file holds the exact text');
      const hash = createHash('sha256').update(file.bytes!).digest('hex');
      assert.ok(JSON.stringify(message.blocks).includes(hash), "the message shows the file's sha256");
      assert.ok(file.initial_comment?.includes(hash), "and so does the file's comment");
      await react(APPROVER, 'white_check_mark', message.ts);
      await until('approved', async () => (await getProposal(db, proposal.id))?.state !== 'pending');
      assert.equal(
        (
          await db.executeSql<{ decided_by: string }>(
            'SELECT decided_by FROM approvals WHERE proposal_id = $1',
            [proposal.id],
          )
        ).rows[0]?.decided_by,
        APPROVER,
      );
    });

    it('expires what nobody approved in time, and deletes evidence past its retention period', async () => {
      const { proposal, message } = await propose('/var/crash/core.4');
      const evidence = join(work, 'evidence', 'old-core');
      mkdirSync(join(work, 'evidence'), { recursive: true });
      writeFileSync(evidence, 'core');
      await db.executeSql(
        `INSERT INTO evidence_artifacts (incident_id, host, remote_path, local_path, state, completed_at)
         VALUES ($1, 'web-9', '/core', $2, 'complete', now() - interval '20 days')`,
        [incidentId, evidence],
      );
      const swept = await sweep(
        {
          now: systemClock,
          db,
          log: createLogger({ level: 'silent' }),
          slack: bot.slack!.poster,
          evidenceDays: 14,
        },
        new Date(Date.now() + 31 * 60_000),
      );
      assert.ok(swept.expired >= 1);
      assert.equal(swept.deleted, 1);
      assert.equal(existsSync(evidence), false);
      assert.equal((await getProposal(db, proposal.id))!.state, 'expired');
      const m = slack.message(CHANNEL, message.ts)!;
      assert.match(m.text ?? '', /Expired/);
      await react(APPROVER, 'white_check_mark', message.ts);
      await until('the ephemeral answer', () =>
        slack.ephemerals.find((e) => e.user === APPROVER && /already expired/.test(e.text ?? '')),
      );
      const audit = await db.executeSql<{ action: string }>(
        `SELECT action FROM audit_log WHERE action IN ('proposal.expired', 'evidence.deleted') ORDER BY id`,
      );
      assert.deepEqual(
        audit.rows.map((r) => r.action).filter((a, i, all) => all.indexOf(a) === i),
        ['proposal.expired', 'evidence.deleted'],
      );
    });
  });
}
