import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WebClient } from '@slack/web-api';
import { recordDelivery } from '../../src/alerts/intake.ts';
import { systemClock } from '../../src/clock.ts';
import { describeMetrics, healthRoutes } from '../../src/http/health.ts';
import { Metrics } from '../../src/metrics.ts';
import { slackPoster } from '../../src/slack/app.ts';
import { drainOutbox } from '../../src/slack/outbox.ts';
import { type OutboxOptions, retryDelayMs } from '../../src/slack/outbox-options.ts';
import type { SlackPoster } from '../../src/slack/poster.ts';
import { alertState, refreshRoot, rootHash } from '../../src/slack/root-message.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { alertmanagerDisk as alertmanager, dockerResolved } from '../helpers/alert-fixtures.ts';
import { testDatabases } from '../helpers/db.ts';
import { FAKE_IDS, type FakeSlack, startFakeSlack } from '../helpers/fake-slack.ts';
import { capturingLogger } from '../helpers/log.ts';

/**
 * The outbox drain against the fake Slack through the real WebClient: a failing message waits
 * for its retry while other incidents' threads go on, replies keep their order, the last attempt
 * marks a message dead, a claim holds while its post waits out a 429, the root follows resolved
 * alerts and is not re-sent when it did not change.
 */
const CHANNEL = FAKE_IDS.channel;

describe('retryDelayMs', () => {
  it('doubles from the base with each attempt and stops at the cap', () => {
    const options = { retryBaseMs: 5000, retryMaxMs: 600_000 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 50].map((n) => retryDelayMs(n, options)),
      [5000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000, 600_000],
    );
    assert.equal(retryDelayMs(0, options), 5000, 'no attempt yet counts as the first');
  });
});

describe('rootHash', () => {
  it('is equal for equal renderings and differs when any text or block differs', () => {
    const message = { text: 'a', blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'x' } }] };
    assert.equal(rootHash(message), rootHash(structuredClone(message)));
    assert.notEqual(rootHash(message), rootHash({ ...message, text: 'b' }));
    assert.notEqual(
      rootHash(message),
      rootHash({ ...message, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'y' } }] }),
    );
  });
});

/** What GET /metrics answers, from the route itself. */
async function scrape(db: Db): Promise<string> {
  const metrics = new Metrics();
  describeMetrics(metrics);
  const route = healthRoutes({ db, metrics }).find((r) => r.path === '/metrics')!;
  let body = '';
  const res = {
    writeHead: () => res,
    end: (text: string) => {
      body = text;
    },
  };
  await route.handler({} as IncomingMessage, res as unknown as ServerResponse);
  return body;
}

const generic = (host: string, extra: object = {}) =>
  JSON.stringify({ host, name: 'DiskFull', disk: { mount: '/', usedPercent: 97 }, ...extra });

/** A chat.postMessage whose text names `host` (roots name it in the title, alert replies in the summary). */
const about = (host: string) => (args: Record<string, unknown>) => String(args.text ?? '').includes(host);

for (const database of testDatabases()) {
  describe(`the outbox drain on ${database.name}`, () => {
    let slack: FakeSlack;
    let poster: SlackPoster;
    let db: Db;
    let logged: ReturnType<typeof capturingLogger>;
    const options: Partial<OutboxOptions> = { retryBaseMs: 60_000 };
    const alert = (body: string) => recordDelivery(db, 'generic', body, { channel: CHANNEL });
    const drain = (extra: Partial<OutboxOptions> = {}) =>
      drainOutbox(db, poster, logged.log, systemClock, { ...options, ...extra });
    const rootOf = async (host: string) => {
      const { rows } = await db.executeSql<{ root_ts: string | null }>(
        'SELECT root_ts FROM incidents WHERE host = $1',
        [host],
      );
      return rows[0]?.root_ts ?? undefined;
    };
    const rows = async (host: string) =>
      (
        await db.executeSql<{
          role: string;
          posted: boolean;
          attempts: number;
          waiting: boolean;
          dead: boolean;
          last_error: string | null;
        }>(
          `SELECT m.role, m.posted_at IS NOT NULL AS posted, m.attempts,
                  coalesce(m.not_before > now(), false) AS waiting, m.dead_at IS NOT NULL AS dead,
                  m.last_error
           FROM thread_messages m JOIN incidents i ON i.id = m.incident_id
           WHERE i.host = $1 ORDER BY m.id`,
          [host],
        )
      ).rows;

    before(async () => {
      slack = await startFakeSlack();
      // One retry inside the client: enough to wait out one 429, quick to give up on a 5xx.
      poster = slackPoster(
        new WebClient(slack.botToken, {
          slackApiUrl: slack.apiUrl,
          retryConfig: { retries: 1, minTimeout: 10, maxTimeout: 10 },
        }),
      );
    });
    after(async () => {
      await slack.close();
    });
    beforeEach(async () => {
      db = await database.open();
      await migrate(db);
      logged = capturingLogger();
    });
    const done = () => db.close();

    it("goes on with other incidents' messages when one fails, and retries it after a delay", async () => {
      try {
        const stop = slack.failWhen('chat.postMessage', about('bad-1'), { error: 'fatal_error' });
        await alert(generic('bad-1'));
        await alert(generic('good-1'));
        assert.equal(await drain(), 2, 'the root and the reply of good-1');
        const good = await rootOf('good-1');
        assert.ok(good);
        assert.equal(slack.thread(CHANNEL, good).length, 1);
        const bad = await rows('bad-1');
        assert.deepEqual(
          bad.map((r) => [r.role, r.posted, r.attempts, r.waiting, r.dead]),
          [
            ['root', false, 1, true, false],
            ['reply', false, 0, false, false],
          ],
        );
        assert.match(bad[0]!.last_error ?? '', /fatal_error/);
        assert.ok(logged.records.some((r) => r.msg === 'could not post to Slack; will retry' && r.retryInMs));

        assert.equal(await drain(), 0, 'nothing is retried before its time');
        const waiting = await scrape(db);
        assert.match(waiting, /nightshift_outbox_messages\{state="pending"\} 2\n/);
        assert.match(waiting, /nightshift_outbox_messages\{state="dead"\} 0\n/);
        assert.match(waiting, /# TYPE nightshift_outbox_oldest_pending_seconds gauge/);
        stop();
        await db.executeSql('UPDATE thread_messages SET not_before = now() WHERE not_before IS NOT NULL');
        assert.equal(await drain(), 2);
        const root = await rootOf('bad-1');
        assert.ok(root);
        assert.equal(slack.thread(CHANNEL, root).length, 1);
      } finally {
        await done();
      }
    });

    it("keeps the order of an incident's replies: none passes an earlier one that failed", async () => {
      try {
        await alert(generic('web-2', { id: 'a', name: 'First' }));
        assert.equal(await drain(), 2);
        for (const name of ['Second', 'Third', 'Fourth'])
          await alert(generic('web-2', { id: name, name, summary: `${name} on web-2` }));
        await alert(generic('other-2'));
        const stop = slack.failWhen('chat.postMessage', about('Second on web-2'), { status: 500 });
        assert.equal(await drain(), 2, 'only the other incident: Third and Fourth wait behind Second');
        assert.deepEqual(
          (await rows('web-2')).map((r) => [r.posted, r.waiting]),
          [
            [true, false],
            [true, false],
            [false, true],
            [false, false],
            [false, false],
          ],
        );
        stop();
        await db.executeSql('UPDATE thread_messages SET not_before = now() WHERE not_before IS NOT NULL');
        assert.equal(await drain(), 3);
        const thread = slack.thread(CHANNEL, (await rootOf('web-2'))!);
        assert.deepEqual(
          thread.map((m) => (m.text ?? '').split('\n')[0]),
          [':fire: Firing: First', ':fire: Firing: Second', ':fire: Firing: Third', ':fire: Firing: Fourth'],
        );
      } finally {
        await done();
      }
    });

    it('marks a message dead after its last attempt, logs it, and lets the thread go on', async () => {
      try {
        await alert(generic('web-3', { id: 'a', name: 'First' }));
        assert.equal(await drain(), 2);
        await alert(generic('web-3', { id: 'b', name: 'Doomed', summary: 'Doomed on web-3' }));
        await alert(generic('web-3', { id: 'c', name: 'After', summary: 'After on web-3' }));
        slack.failWhen('chat.postMessage', about('Doomed on web-3'), { error: 'invalid_blocks' });
        // No delay between attempts: all three happen in this one drain.
        assert.equal(await drain({ maxAttempts: 3, retryBaseMs: 0 }), 1, 'After, once Doomed is dead');
        const [, , doomed, later] = await rows('web-3');
        assert.deepEqual(
          [doomed!.posted, doomed!.dead, doomed!.attempts],
          [false, true, 3],
          'dead after three attempts',
        );
        assert.match(doomed!.last_error ?? '', /invalid_blocks/);
        assert.equal(later!.posted, true);
        const dead = logged.records.filter(
          (r) => r.msg === 'could not post to Slack; gave up on the message (dead)',
        );
        assert.equal(dead.length, 1);
        assert.equal(dead[0]!.level, 50, 'logged as an error');
        assert.equal(dead[0]!.attempts, 3);
        assert.equal(await drain({ maxAttempts: 3, retryBaseMs: 0 }), 0, 'a dead message is not tried again');
        const metrics = await scrape(db);
        assert.match(metrics, /nightshift_outbox_messages\{state="pending"\} 0\n/);
        assert.match(metrics, /nightshift_outbox_messages\{state="dead"\} 1\n/);
        assert.match(metrics, /nightshift_outbox_oldest_pending_seconds 0\n/);
        assert.equal(
          slack.callsTo('chat.postMessage').filter((c) => about('Doomed on web-3')(c.args)).length,
          3,
        );
      } finally {
        await done();
      }
    });

    it('keeps its claim while the post waits out a 429: another poster does not post it again', async () => {
      try {
        const claims = { claimTimeoutMs: 300, claimRenewMs: 100 };
        slack.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
        await alert(generic('slow-4'));
        const before = slack.callsTo('chat.postMessage').length;
        // The first poster's root waits a second for Retry-After, three claim timeouts long.
        const first = drain({ ...claims, maxAttempts: 1 });
        // Meanwhile another process (its own Web API client) drains the same outbox, again and again.
        const other = slackPoster(new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl }));
        let otherPosted = 0;
        let finished = false;
        void first.finally(() => {
          finished = true;
        });
        while (!finished) {
          otherPosted += await drainOutbox(db, other, logged.log, systemClock, { ...options, ...claims });
          await new Promise((r) => setTimeout(r, 50));
        }
        // The root is the first poster's (claimed, kept through the 429); the reply may be posted
        // by either once the root is in. Each message exactly once.
        const firstPosted = await first;
        assert.ok(firstPosted >= 1, 'the first poster posted the root it held');
        assert.equal(firstPosted + otherPosted, 2, 'the root and the reply, once each');
        const calls = slack.callsTo('chat.postMessage').slice(before);
        assert.deepEqual(
          calls.map((c) => c.status),
          [429, 200, 200],
          'the root once after the 429, and the reply once',
        );
        const root = (await rootOf('slow-4'))!;
        const roots = (slack.messages.get(CHANNEL) ?? []).filter(
          (m) => /slow-4/.test(m.text ?? '') && (m.thread_ts === undefined || m.thread_ts === m.ts),
        );
        assert.equal(roots.length, 1, 'one root in the channel');
        assert.equal(slack.thread(CHANNEL, root).length, 1);
        assert.ok(
          !logged.records.some((r) => r.msg === 'lost the claim on a Slack message while posting it'),
        );
      } finally {
        await done();
      }
    });

    it('shows on the root the latest state of each alert: a resolved mount, alerts by state', async () => {
      try {
        await recordDelivery(db, 'alertmanager', alertmanager, { channel: CHANNEL });
        const { rows } = await db.executeSql<{ id: string }>('SELECT id FROM incidents');
        const id = Number(rows[0]!.id);
        assert.deepEqual(await alertState(db, id), {
          disks: [
            { mount: '/', usedPercent: 96.88, status: 'firing' },
            { mount: '/var/lib/docker', usedPercent: 98.98, status: 'firing' },
          ],
          alerts: { firing: 2, resolved: 0 },
        });
        assert.equal(await drain(), 3);
        const root = (await rootOf('web-1'))!;
        const shown = () => JSON.stringify(slack.message(CHANNEL, root)!.blocks);
        assert.match(shown(), /\/var\/lib\/docker 98\.98% used/);
        assert.match(shown(), /\*Alerts:\* 2 firing/);

        await recordDelivery(db, 'alertmanager', dockerResolved, { channel: CHANNEL });
        assert.deepEqual(await alertState(db, id), {
          disks: [
            { mount: '/', usedPercent: 96.88, status: 'firing' },
            { mount: '/var/lib/docker', usedPercent: 98.98, status: 'resolved' },
          ],
          alerts: { firing: 1, resolved: 1 },
        });
        assert.equal(await drain(), 1);
        const thread = slack.thread(CHANNEL, root);
        assert.match(
          thread.at(-1)!.text ?? '',
          /^:large_green_circle: Resolved: NodeFilesystemAlmostOutOfSpace/,
        );
        assert.match(shown(), /\*Disk:\* \/ 96\.88% used, \/var\/lib\/docker resolved/);
        assert.match(shown(), /\*Alerts:\* 1 firing, 1 resolved/);
        assert.doesNotMatch(shown(), /98\.98/);
      } finally {
        await done();
      }
    });

    it('does not update the root after an alert reply that changed nothing on it', async () => {
      try {
        await alert(generic('web-5', { id: 'disk', startsAt: '2026-11-25T23:00:00Z' }));
        assert.equal(await drain(), 2);
        const root = (await rootOf('web-5'))!;
        const updates = () => slack.callsTo('chat.update').filter((c) => c.args.ts === root).length;
        assert.equal(updates(), 0, 'the root was posted with this alert on it');
        // A burst: the same alert firing again and again, at the same usage.
        for (let i = 1; i <= 5; i++)
          await alert(generic('web-5', { id: 'disk', startsAt: `2026-11-25T23:0${i}:00Z` }));
        assert.equal(await drain(), 5);
        assert.equal(slack.thread(CHANNEL, root).length, 6);
        assert.equal(updates(), 0, 'five replies, no chat.update');
        // The usage changes: one update, and a refresh after it changes nothing.
        await alert(
          generic('web-5', {
            id: 'disk',
            startsAt: '2026-11-25T23:10:00Z',
            disk: { mount: '/', usedPercent: 99 },
          }),
        );
        assert.equal(await drain(), 1);
        assert.equal(updates(), 1);
        assert.match(JSON.stringify(slack.message(CHANNEL, root)!.blocks), /\/ 99% used/);
        const { rows } = await db.executeSql<{ id: string }>(`SELECT id FROM incidents WHERE host = 'web-5'`);
        await refreshRoot(db, poster, Number(rows[0]!.id), new Date());
        assert.equal(updates(), 1);
      } finally {
        await done();
      }
    });

    it('updates the root at the next refresh when an update failed', async () => {
      try {
        await alert(generic('web-6', { id: 'disk' }));
        assert.equal(await drain(), 2);
        const root = (await rootOf('web-6'))!;
        const { rows } = await db.executeSql<{ id: string }>(`SELECT id FROM incidents WHERE host = 'web-6'`);
        const id = Number(rows[0]!.id);
        await db.executeSql(`UPDATE incidents SET commander = 'U0NEWCMDR' WHERE id = $1`, [id]);
        slack.failNext('chat.update', { error: 'fatal_error' });
        await assert.rejects(refreshRoot(db, poster, id, new Date()), /fatal_error/);
        await refreshRoot(db, poster, id, new Date());
        assert.match(JSON.stringify(slack.message(CHANNEL, root)!.blocks), /<@U0NEWCMDR>/);
      } finally {
        await done();
      }
    });
  });
}
