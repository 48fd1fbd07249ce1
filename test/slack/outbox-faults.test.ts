import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WebClient } from '@slack/web-api';
import { recordDelivery } from '../../src/alerts/intake.ts';
import { runChecks } from '../../src/cli/commands/doctor.ts';
import { systemClock } from '../../src/clock.ts';
import { POSTER_CLIENT_OPTIONS, slackPoster } from '../../src/slack/app.ts';
import { drainOutbox } from '../../src/slack/outbox.ts';
import { OutboxPump } from '../../src/slack/outbox-pump.ts';
import { OUTBOX_EVENT_TYPE, type SlackPoster } from '../../src/slack/poster.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { queueThreadMessage } from '../../src/store/records.ts';
import { testDatabases } from '../helpers/db.ts';
import { FAKE_IDS, type FakeSlack, startFakeSlack } from '../helpers/fake-slack.ts';
import { capturingLogger } from '../helpers/log.ts';
import { until } from '../helpers/wait.ts';

/**
 * The outbox under the faults a real Slack shows: a request that never answers, an answer lost
 * after Slack carried the post out, a 429, and a bot stopped while a call hangs. Through the real
 * WebClient as the bot builds it (a deadline on every request, retries for 429s only).
 */
const CHANNEL = FAKE_IDS.channel;
const generic = (host: string, extra: object = {}) =>
  JSON.stringify({ host, name: 'DiskFull', disk: { mount: '/', usedPercent: 97 }, ...extra });
const about = (host: string) => (args: Record<string, unknown>) => String(args.text ?? '').includes(host);

for (const database of testDatabases()) {
  describe(`the outbox under Slack faults on ${database.name}`, () => {
    let slack: FakeSlack;
    let poster: SlackPoster;
    let db: Db;
    let logged: ReturnType<typeof capturingLogger>;
    const alert = (body: string) => recordDelivery(db, 'generic', body, { channel: CHANNEL });
    const rootOf = async (host: string) =>
      (
        await db.executeSql<{ root_ts: string | null }>('SELECT root_ts FROM incidents WHERE host = $1', [
          host,
        ])
      ).rows[0]?.root_ts ?? undefined;
    const unposted = async () =>
      (
        await db.executeSql<{ n: number }>(
          'SELECT count(*)::int AS n FROM thread_messages WHERE posted_at IS NULL',
        )
      ).rows[0]!.n;
    const postsAbout = (host: string) =>
      slack.calls.filter((c) => c.method === 'chat.postMessage' && about(host)(c.args));

    before(async () => {
      slack = await startFakeSlack();
      poster = slackPoster(
        new WebClient(slack.botToken, {
          slackApiUrl: slack.apiUrl,
          timeout: 800,
          ...POSTER_CLIENT_OPTIONS,
        }),
      );
    });
    after(() => slack.close());
    beforeEach(async () => {
      db = await database.open();
      await migrate(db);
      logged = capturingLogger();
    });

    it('a call that never answers holds up neither the other threads nor, after its deadline, its own', async () => {
      try {
        slack.failWhen('chat.postMessage', about('hung-1'), { hang: true }, 1);
        await alert(generic('hung-1'));
        for (const host of ['fine-1', 'fine-2', 'fine-3']) await alert(generic(host));
        // A deadline long enough that the other threads cannot have waited for it.
        const patient = slackPoster(
          new WebClient(slack.botToken, {
            slackApiUrl: slack.apiUrl,
            timeout: 5000,
            ...POSTER_CLIENT_OPTIONS,
          }),
        );
        const started = Date.now();
        let settled = false;
        const draining = drainOutbox(db, patient, logged.log, systemClock, {
          retryBaseMs: 50,
          concurrency: 4,
        }).finally(() => {
          settled = true;
        });
        // The other threads are posted while the hung call is still waiting for its answer.
        await until('the other threads are posted', async () => {
          for (const host of ['fine-1', 'fine-2', 'fine-3']) {
            const root = await rootOf(host);
            if (!root || slack.thread(CHANNEL, root).length !== 1) return false;
          }
          return true;
        });
        assert.equal(settled, false, 'the hung call is still in flight');
        assert.ok(Date.now() - started < 5000, `the other threads waited ${Date.now() - started} ms`);
        await draining;
        // The hung post timed out and was released for a retry, which posts it once.
        await until(
          'the hung thread is posted',
          async () => {
            await drainOutbox(db, poster, logged.log, systemClock, { retryBaseMs: 50 });
            return (await unposted()) === 0;
          },
          10_000,
        );
        const root = await rootOf('hung-1');
        assert.ok(root);
        assert.equal(slack.thread(CHANNEL, root).length, 1, 'its reply, once');
        const roots = (slack.messages.get(CHANNEL) ?? []).filter(
          (m) => String(m.text).includes('hung-1') && (m.thread_ts === undefined || m.thread_ts === m.ts),
        );
        assert.equal(roots.length, 1, 'the root once: the hung request had not been carried out');
      } finally {
        await db.close();
      }
    });

    it('posts exactly once when Slack carried a post out and its answer was lost', async () => {
      try {
        await alert(generic('lost-1'));
        assert.equal(
          await drainOutbox(db, poster, logged.log, systemClock),
          2,
          'the root and the first reply',
        );
        const root = (await rootOf('lost-1'))!;
        await alert(generic('lost-1', { id: 'second', name: 'Second', summary: 'second alert on lost-1' }));
        slack.failNext('chat.postMessage', { lostAnswer: true });
        // A long retry delay, so this drain's other posters do not retry it before the test looks.
        await drainOutbox(db, poster, logged.log, systemClock, { retryBaseMs: 60_000 });
        assert.equal(slack.thread(CHANNEL, root).length, 2, 'Slack has the reply; the bot did not hear');
        assert.equal(await unposted(), 1);
        await db.executeSql('UPDATE thread_messages SET not_before = now() WHERE not_before IS NOT NULL');
        assert.equal(await drainOutbox(db, poster, logged.log, systemClock, { retryBaseMs: 10 }), 1);
        assert.equal(await unposted(), 0);
        const thread = slack.thread(CHANNEL, root);
        assert.equal(thread.length, 2, 'not posted a second time');
        const tagged = thread[1]!.metadata as { event_type: string; event_payload: { key: string } };
        assert.equal(tagged.event_type, OUTBOX_EVENT_TYPE);
        const { rows } = await db.executeSql<{ ts: string; dedup_key: string }>(
          "SELECT ts, dedup_key FROM thread_messages WHERE role = 'reply' ORDER BY id",
        );
        assert.equal(rows[1]!.ts, thread[1]!.ts, 'the reply found in the thread is recorded as posted');
        assert.equal(tagged.event_payload.key, rows[1]!.dedup_key);
        assert.equal(
          postsAbout('lost-1').length,
          3,
          'the root, the first reply, the one whose answer was lost; no fourth',
        );
      } finally {
        await db.close();
      }
    });

    it('shares a file exactly once when Slack shared it and the answer was lost', async () => {
      try {
        await alert(generic('lostfile-1'));
        await drainOutbox(db, poster, logged.log, systemClock);
        const root = (await rootOf('lostfile-1'))!;
        const { rows } = await db.executeSql<{ id: string }>(
          "SELECT id FROM incidents WHERE host = 'lostfile-1'",
        );
        await queueThreadMessage(db, {
          incidentId: Number(rows[0]!.id),
          key: 'lostfile-1:report',
          fallbackChannel: CHANNEL,
          body: {
            type: 'file',
            content: 'x'.repeat(20_000),
            filename: 'report.txt',
            title: 'Report',
            comment: 'the report',
          },
        });
        const filesBefore = slack.files.length;
        const callsBefore = slack.calls.length;
        slack.failNext('files.completeUploadExternal', { lostAnswer: true });
        await drainOutbox(db, poster, logged.log, systemClock, { retryBaseMs: 60_000 });
        const ours = () => slack.files.slice(filesBefore);
        assert.equal(ours().length, 1);
        assert.deepEqual(
          ours()[0]!.shares.map((share) => share.thread_ts),
          [root],
          'Slack shared it in the thread; the bot did not hear',
        );
        assert.equal(await unposted(), 1);
        await db.executeSql('UPDATE thread_messages SET not_before = now() WHERE not_before IS NOT NULL');
        await drainOutbox(db, poster, logged.log, systemClock, { retryBaseMs: 10 });
        assert.equal(await unposted(), 0, 'recorded as posted');
        assert.equal(ours().length, 1, 'not uploaded a second time');
        assert.equal(ours()[0]!.shares.length, 1, 'not shared a second time');
        assert.equal(ours()[0]!.bytes?.length, 20_000);
        const calls = slack.calls.slice(callsBefore).map((c) => c.method);
        assert.deepEqual(
          calls.filter((m) => m.startsWith('files.')),
          ['files.getUploadURLExternal', 'files.completeUploadExternal'],
          'one upload, one share: the one whose answer was lost',
        );
      } finally {
        await db.close();
      }
    });

    it('uploads a file again when the upload it kept is gone from Slack, and shares it once', async () => {
      try {
        await alert(generic('lostfile-2'));
        await drainOutbox(db, poster, logged.log, systemClock);
        const root = (await rootOf('lostfile-2'))!;
        const { rows } = await db.executeSql<{ id: string }>(
          "SELECT id FROM incidents WHERE host = 'lostfile-2'",
        );
        await queueThreadMessage(db, {
          incidentId: Number(rows[0]!.id),
          key: 'lostfile-2:report',
          fallbackChannel: CHANNEL,
          body: {
            type: 'file',
            content: 'output',
            filename: 'out.txt',
            title: 'Output',
            comment: 'the output',
          },
        });
        const filesBefore = slack.files.length;
        // A share that failed before Slack did it, then one refused as Slack refuses an expired upload.
        slack.failNext('files.completeUploadExternal', { status: 500 });
        slack.failNext('files.completeUploadExternal', { error: 'file_not_found' });
        for (let i = 0; i < 3; i++) {
          await drainOutbox(db, poster, logged.log, systemClock, { retryBaseMs: 60_000 });
          await db.executeSql('UPDATE thread_messages SET not_before = now() WHERE not_before IS NOT NULL');
        }
        assert.equal(await unposted(), 0);
        const ours = slack.files.slice(filesBefore);
        assert.equal(
          ours.length,
          2,
          'the kept upload shared after the 500, uploaded again after file_not_found',
        );
        assert.deepEqual(
          ours.flatMap((f) => f.shares.map((share) => share.thread_ts)),
          [root],
          'shared once, in its thread',
        );
      } finally {
        await db.close();
      }
    });

    it('finds a root whose answer was lost in the channel instead of opening a second one', async () => {
      try {
        slack.failWhen('chat.postMessage', about('lostroot-1'), { lostAnswer: true }, 1);
        await alert(generic('lostroot-1'));
        await drainOutbox(db, poster, logged.log, systemClock, { retryBaseMs: 60_000 });
        await db.executeSql('UPDATE thread_messages SET not_before = now() WHERE not_before IS NOT NULL');
        await drainOutbox(db, poster, logged.log, systemClock, { retryBaseMs: 10 });
        assert.equal(await unposted(), 0);
        const roots = (slack.messages.get(CHANNEL) ?? []).filter(
          (m) => String(m.text).includes('lostroot-1') && (m.thread_ts === undefined || m.thread_ts === m.ts),
        );
        assert.equal(roots.length, 1, 'one root');
        const root = await rootOf('lostroot-1');
        assert.equal(root, roots[0]!.ts);
        assert.equal(slack.thread(CHANNEL, root!).length, 1, 'its reply went under the root found');
      } finally {
        await db.close();
      }
    });

    it('waits out a 429 (Slack did not carry the post out) and posts once', async () => {
      try {
        slack.failWhen('chat.postMessage', about('limited-1'), { status: 429, retryAfter: 1 }, 1);
        await alert(generic('limited-1'));
        assert.equal(
          await drainOutbox(db, poster, logged.log, systemClock),
          2,
          'the root after its 429, and the reply',
        );
        assert.deepEqual(
          postsAbout('limited-1').map((c) => c.status),
          [429, 200, 200],
        );
      } finally {
        await db.close();
      }
    });

    it('stops within its deadline while a call hangs, and gives the claim back', async () => {
      try {
        slack.failWhen('chat.postMessage', about('stuck-1'), { hang: true }, 1);
        await alert(generic('stuck-1'));
        const slow = slackPoster(
          new WebClient(slack.botToken, {
            slackApiUrl: slack.apiUrl,
            timeout: 60_000,
            ...POSTER_CLIENT_OPTIONS,
          }),
        );
        const pump = new OutboxPump(db, slow, logged.log, systemClock);
        pump.kick();
        await until(
          'the post is in flight',
          async () =>
            (
              await db.executeSql<{ n: number }>(
                'SELECT count(*)::int AS n FROM thread_messages WHERE claimed_by IS NOT NULL',
              )
            ).rows[0]!.n === 1,
        );
        const started = Date.now();
        await pump.stop(300);
        assert.ok(Date.now() - started < 2000, `stopped after ${Date.now() - started} ms`);
        const { rows } = await db.executeSql<{ claimed_by: string | null; posted_at: Date | null }>(
          'SELECT claimed_by, posted_at FROM thread_messages',
        );
        assert.ok(rows.length > 0);
        for (const r of rows)
          assert.deepEqual(
            [r.claimed_by, r.posted_at],
            [null, null],
            'the claim is given back, nothing posted',
          );
        assert.equal(pump.kick() instanceof Promise, true);
        assert.equal(
          slack.calls.filter((c) => c.method === 'chat.postMessage' && about('stuck-1')(c.args)).length,
          1,
        );
      } finally {
        await db.close();
      }
    });

    it('says when the outbox is stuck: the log, /metrics and doctor', async () => {
      try {
        await alert(generic('old-1'));
        await db.executeSql(
          "UPDATE thread_messages SET created_at = now() - interval '5 minutes', last_error = 'timeout'",
        );
        const pump = new OutboxPump(db, poster, logged.log, systemClock);
        const age = await pump.checkStuck();
        assert.ok(age > 290, `age ${age}`);
        assert.ok(logged.records.some((r) => /the Slack outbox is stuck/.test(String(r.msg))));
        await pump.checkStuck();
        assert.equal(
          logged.records.filter((r) => /outbox is stuck/.test(String(r.msg))).length,
          1,
          'once a minute',
        );
        await pump.stop();
      } finally {
        await db.close();
      }
    });
  });
}

describe('doctor and the outbox', () => {
  it('fails while a message has waited more than a minute', {
    skip: process.env.DATABASE_URL ? false : 'set DATABASE_URL',
  }, async () => {
    const [postgres] = testDatabases().filter((d) => d.name === 'postgres');
    const db = await postgres!.open();
    try {
      await migrate(db);
      await recordDelivery(db, 'generic', generic('old-2'), { channel: CHANNEL });
      await db.executeSql(
        "UPDATE thread_messages SET created_at = now() - interval '3 minutes', last_error = 'timeout'",
      );
      const schema = (await db.executeSql<{ s: string }>('SELECT current_schema() AS s')).rows[0]!.s;
      const results = await runChecks({ DATABASE_URL: process.env.DATABASE_URL, DATABASE_SCHEMA: schema });
      const outbox = results.find((r) => r.part === 'slack outbox')!;
      assert.equal(outbox.ok, false);
      assert.match(
        outbox.detail,
        /stuck: 2 message\(s\) to post, the oldest waiting 1\d\d s \(last error: timeout\)/,
      );
    } finally {
      await db.close();
    }
  });
});
