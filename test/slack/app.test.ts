import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { alertmanagerDisk as alertmanager } from '../helpers/alert-fixtures.ts';
import {
  botUrl,
  CHANNEL,
  deliverEvent,
  postAlert,
  rootsIn,
  SIGNING_SECRET,
  startTestBot,
} from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';
import {
  appMentionEvent,
  eventCallbackBody,
  eventCallbackPayload,
  FAKE_IDS,
  type FakeSlack,
  reactionAddedEvent,
  signedRequest,
  slashCommandBody,
  slashCommandPayload,
  startFakeSlack,
} from '../helpers/fake-slack.ts';
import { freePort, until } from '../helpers/wait.ts';

/**
 * The Slack app end to end against the fake Slack Web API (real WebClient, real Bolt receiver,
 * signed requests, Socket Mode over a local WebSocket): alerts become threads, commands and
 * mentions steer them, retries change nothing.
 */

for (const database of testDatabases()) {
  describe(`the Slack app over HTTP on ${database.name}`, () => {
    let slack: FakeSlack;
    let db: Db;
    let bot: Bot;
    let events: string;
    const alert = (body: string) => postAlert(bot, 'alertmanager', body);

    before(async () => {
      slack = await startFakeSlack();
      db = await database.open();
      bot = await startTestBot({ db, slack });
      events = botUrl(bot, '/slack/events');
    });
    after(async () => {
      await bot.close();
      await db.close();
      await slack.close();
    });

    it('turns a disk alert into one incident thread: a root showing the disks, a reply per alert', async () => {
      assert.equal((await alert(alertmanager)).status, 202);
      const root = await until('the root message', () => rootsIn(slack)[0]);
      assert.match(root.text ?? '', /#\d+ Disk \/ filling on web-1/);
      const replies = await until('two replies', () => {
        const thread = slack.thread(CHANNEL, root.ts);
        return thread.length === 2 ? thread : undefined;
      });
      assert.deepEqual(
        replies.map((r) => (r.text ?? '').split('\n')[0]),
        [':fire: Firing: NodeFilesystemAlmostOutOfSpace', ':fire: Firing: NodeFilesystemAlmostOutOfSpace'],
      );
      const latest = JSON.stringify(slack.message(CHANNEL, root.ts)!.blocks);
      assert.match(latest, /\/var\/lib\/docker 98\.98% used/);
      // Both alerts were on the root when it was posted: the replies changed nothing to update.
      await bot.slack!.pump.kick();
      assert.equal(slack.callsTo('chat.update').length, 0);
    });

    it('posts nothing new for a duplicate delivery', async () => {
      const before = slack.callsTo('chat.postMessage').length;
      const res = await alert(alertmanager);
      assert.equal(res.status, 202);
      await bot.slack!.pump.kick();
      assert.equal(slack.callsTo('chat.postMessage').length, before);
      assert.equal(rootsIn(slack).length, 1);
    });

    it('answers /investigate <host> by opening an incident, acked at once and answered only to the asker', async () => {
      const responseUrl = slack.responseUrl();
      const res = await signedRequest(
        events,
        SIGNING_SECRET,
        slashCommandBody({ text: 'db-7 replication lag', response_url: responseUrl }),
      );
      assert.equal(res.status, 200);
      const response = await until('the ephemeral answer', () =>
        slack.responses.find((r) => r.url === responseUrl),
      );
      assert.match(JSON.stringify(response.body), /Opened incident #\d+ for db-7/);
      assert.match(JSON.stringify(response.body), /ephemeral/);
      await until('its root message', () =>
        rootsIn(slack).find((m) => /db-7: replication lag/.test(m.text ?? '')),
      );
    });

    it('answers bad usage with help', async () => {
      const responseUrl = slack.responseUrl();
      await signedRequest(
        events,
        SIGNING_SECRET,
        slashCommandBody({ text: 'status #abc', response_url: responseUrl }),
      );
      const response = await until('the help', () => slack.responses.find((r) => r.url === responseUrl));
      assert.match(JSON.stringify(response.body), /is not an incident number/);
      assert.match(JSON.stringify(response.body), /Usage/);
    });

    it('acts on a mention in an incident thread, once even when Slack retries the event', async () => {
      const root = rootsIn(slack)[0]!;
      const event = appMentionEvent({
        text: `<@${FAKE_IDS.botUser}> resolve`,
        channel: CHANNEL,
        thread_ts: root.ts,
      });
      const body = eventCallbackBody(event, { eventId: 'Ev0MENTION1' });
      assert.equal((await deliverEvent(bot, body)).status, 200);
      await until('the incident to be resolved', async () => {
        const { rows } = await db.executeSql<{ status: string }>(
          'SELECT status FROM incidents WHERE root_ts = $1',
          [root.ts],
        );
        return rows[0]?.status === 'resolved';
      });
      assert.equal((await deliverEvent(bot, body, true)).status, 200);
      await until('the answer in the thread', () =>
        slack.thread(CHANNEL, root.ts).find((m) => /is now resolved/.test(m.text ?? '')),
      );
      await new Promise((r) => setTimeout(r, 300));
      const answers = slack.thread(CHANNEL, root.ts).filter((m) => /is now resolved/.test(m.text ?? ''));
      assert.equal(answers.length, 1, 'the retry was handled again');
      const { rows } = await db.executeSql<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_log WHERE action = 'incident.status'`,
      );
      assert.equal(rows[0]!.n, 1);
      await until('the root to say resolved', () =>
        /resolved/.test(slack.message(CHANNEL, root.ts)!.text ?? ''),
      );
    });

    it('posts the postmortem-ready summary to the thread as a Markdown file', async () => {
      const root = rootsIn(slack)[0]!;
      const body = eventCallbackBody(
        appMentionEvent({ text: `<@${FAKE_IDS.botUser}> summary`, channel: CHANNEL, thread_ts: root.ts }),
      );
      assert.equal((await deliverEvent(bot, body)).status, 200);
      const file = await until('the summary file', () =>
        slack.files.find((f) => f.filename?.endsWith('-summary.md') && f.completed),
      );
      assert.equal(file.thread_ts, root.ts);
      const text = Buffer.from(file.bytes!).toString('utf8');
      assert.match(text, /^# Incident #\d+: Disk \/ filling on web-1/);
      assert.match(text, /alert firing: disk on web-1/);
      assert.match(text, /incident\.status by U0FAKEUSR1/);
    });

    it('makes whoever reacts with :raising_hand: on a root the commander', async () => {
      const root = rootsIn(slack).find((m) => /db-7/.test(m.text ?? ''))!;
      const body = eventCallbackBody(
        reactionAddedEvent({
          user: 'U0COMMANDER',
          reaction: 'raising_hand',
          item: { type: 'message', channel: CHANNEL, ts: root.ts },
        }),
      );
      assert.equal((await deliverEvent(bot, body)).status, 200);
      await until('the root to name the commander', () =>
        /<@U0COMMANDER>/.test(JSON.stringify(slack.message(CHANNEL, root.ts)!.blocks)),
      );
    });

    it('waits out a rate limit and posts once', async () => {
      slack.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
      const generic = JSON.stringify({
        host: 'cache-1',
        name: 'DiskFull',
        disk: { mount: '/', usedPercent: 97 },
      });
      await postAlert(bot, 'generic', generic);
      const root = await until(
        'the root after the 429',
        () => rootsIn(slack).find((m) => /cache-1/.test(m.text ?? '')),
        20_000,
      );
      assert.ok(root);
      assert.equal(rootsIn(slack).filter((m) => /cache-1/.test(m.text ?? '')).length, 1);
    });

    it('refuses a request with a wrong signature', async () => {
      const res = await signedRequest(
        events,
        SIGNING_SECRET,
        slashCommandBody({ text: 'web-9' }),
        undefined,
        {
          signature: 'v0=deadbeef',
        },
      );
      assert.equal(res.status, 401);
    });
  });
}

describe('the Slack app over Socket Mode', () => {
  it('connects with the app token, acks a slash command and a mention, and acts on both', async () => {
    const slack = await startFakeSlack();
    const db = await testDatabases()[0]!.open();
    const bot = await startTestBot({ db, slack, mode: 'socket', port: await freePort() });
    try {
      await slack.waitForSocket();
      const responseUrl = slack.responseUrl();
      const ack = await slack.sendEnvelope(
        'slash_commands',
        slashCommandPayload({ text: 'web-42', response_url: responseUrl }),
      );
      const command = slack.envelopes.find((e) => e.type === 'slash_commands')!;
      assert.equal(ack.envelope_id, command.envelope_id, 'the ack answers the envelope sent');
      assert.equal(ack.type, 'slash_commands');
      const response = await until('the ephemeral answer', () =>
        slack.responses.find((r) => r.url === responseUrl),
      );
      assert.match(JSON.stringify(response.body), /Opened incident #\d+ for web-42/);
      const root = await until('the root message', () =>
        rootsIn(slack).find((m) => /web-42/.test(m.text ?? '')),
      );
      const health = await fetch(botUrl(bot, '/healthz'));
      assert.equal(health.status, 200, 'the bot routes are served beside Socket Mode');

      const mention = eventCallbackPayload(
        appMentionEvent({ text: `<@${FAKE_IDS.botUser}> status`, channel: CHANNEL, thread_ts: root.ts }),
      );
      const mentionAck = await slack.sendEnvelope('events_api', mention);
      const event = slack.envelopes.find((e) => e.type === 'events_api')!;
      assert.equal(mentionAck.envelope_id, event.envelope_id);
      assert.equal(mentionAck.type, 'events_api');
      const answer = await until('the status answer in the incident thread', () =>
        slack.thread(CHANNEL, root.ts).find((m) => /^#\d+ .*web-42.*: open, severity/.test(m.text ?? '')),
      );
      assert.equal(answer.user, FAKE_IDS.botUser);
      assert.equal(
        slack.acks.filter((a) => a.envelope_id === command.envelope_id || a.envelope_id === event.envelope_id)
          .length,
        2,
        'each envelope acked once',
      );
    } finally {
      await bot.close();
      await db.close();
      await slack.close();
    }
  });
});
