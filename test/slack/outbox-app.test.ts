import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { alertmanagerDisk as alertmanager, dockerResolved } from '../helpers/alert-fixtures.ts';
import { botUrl, CHANNEL, postAlert, rootsIn, startTestBot } from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';
import { type FakeSlack, startFakeSlack } from '../helpers/fake-slack.ts';
import { until } from '../helpers/wait.ts';

/**
 * The Slack outbox in the running bot, against the fake Slack: a message Slack keeps refusing
 * holds up no other incident's thread and shows in /metrics until it is posted; a resolved alert
 * gets its reply and updates the root, through a 429.
 */

for (const database of testDatabases()) {
  describe(`the Slack outbox in the bot on ${database.name}`, () => {
    let slack: FakeSlack;
    let db: Db;
    let bot: Bot;
    const post = (source: string, body: string) => postAlert(bot, source, body);
    const metric = async (state: string) => {
      const text = await (await fetch(botUrl(bot, '/metrics'))).text();
      const m = new RegExp(`^nightshift_outbox_messages\\{state="${state}"\\} (\\d+)$`, 'm').exec(text);
      assert.ok(m, `no ${state} outbox gauge in /metrics`);
      return Number(m[1]);
    };

    before(async () => {
      slack = await startFakeSlack();
      db = await database.open();
      bot = await startTestBot({ db, slack });
    });
    after(async () => {
      await bot.close();
      await db.close();
      await slack.close();
    });

    it("posts other incidents' threads while Slack refuses one, which /metrics counts until it is posted", async () => {
      const stop = slack.failWhen('chat.postMessage', (args) => /bad-7/.test(String(args.text)), {
        error: 'fatal_error',
      });
      const generic = (host: string) =>
        JSON.stringify({ host, name: 'DiskFull', disk: { mount: '/', usedPercent: 97 } });
      assert.equal((await post('generic', generic('bad-7'))).status, 202);
      await until('the refused root', () =>
        slack.callsTo('chat.postMessage').find((c) => /bad-7/.test(String(c.args.text))),
      );
      assert.equal((await post('generic', generic('good-7'))).status, 202);
      const good = await until(
        "good-7's root",
        () => rootsIn(slack).find((m) => /good-7/.test(m.text ?? '')),
        5000,
      );
      await until("good-7's reply", () => slack.thread(CHANNEL, good.ts).length === 1, 5000);
      assert.equal(await metric('pending'), 2, "bad-7's root, and its reply behind it");
      assert.equal(await metric('dead'), 0);

      stop();
      // Its retry is due in seconds; bring it forward rather than wait.
      await db.executeSql('UPDATE thread_messages SET not_before = now() WHERE not_before IS NOT NULL');
      await bot.slack!.pump.kick();
      const bad = await until("bad-7's root", () => rootsIn(slack).find((m) => /bad-7/.test(m.text ?? '')));
      await until("bad-7's reply", () => slack.thread(CHANNEL, bad.ts).length === 1);
      assert.equal(await metric('pending'), 0);
    });

    it('answers a resolved alert with a reply and updates the root, waiting out a 429', async () => {
      assert.equal((await post('alertmanager', alertmanager)).status, 202);
      const root = await until('the root', () => rootsIn(slack).find((m) => /web-1/.test(m.text ?? '')));
      await until('two replies', () => slack.thread(CHANNEL, root.ts).length === 2);
      await bot.slack!.pump.kick();
      const updates = () => slack.callsTo('chat.update').filter((c) => c.args.ts === root.ts);
      assert.equal(updates().length, 0);

      slack.failNext('chat.update', { status: 429, retryAfter: 1 });
      assert.equal((await post('alertmanager', dockerResolved)).status, 202);
      const reply = await until('the resolved reply', () => slack.thread(CHANNEL, root.ts)[2]);
      assert.match(reply.text ?? '', /^:large_green_circle: Resolved: NodeFilesystemAlmostOutOfSpace/);
      await until(
        'the root to show the resolution',
        () => /\/var\/lib\/docker resolved/.test(JSON.stringify(slack.message(CHANNEL, root.ts)!.blocks)),
        10_000,
      );
      const blocks = JSON.stringify(slack.message(CHANNEL, root.ts)!.blocks);
      assert.match(blocks, /\*Alerts:\* 1 firing, 1 resolved/);
      assert.deepEqual(
        updates().map((c) => c.status),
        [429, 200],
        'one update, sent again after the 429',
      );
    });
  });
}
