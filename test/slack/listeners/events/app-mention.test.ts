import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appMentionCallback } from '../../../../src/slack/listeners/events/app-mention.ts';
import { CHANNEL, suiteSlack } from '../../../helpers/bot.ts';
import { openIncident, testDatabases } from '../../../helpers/db.ts';
import { appMentionEvent, eventCallbackPayload, FAKE_IDS } from '../../../helpers/fake-slack.ts';
import {
  boltArgs,
  brokenStore,
  callListener,
  listenerDeps,
  postedInSlack,
} from '../../../helpers/listener-args.ts';

/**
 * `@nightshift <verb>` in an incident's thread, its callback called directly with a built
 * app_mention event: the answer goes to the thread through the client, once per event however
 * often Slack delivers it, without unfurls or pings.
 */
const ROOT_TS = '1764126000.000300';
const mention = (text: string, eventId: string, ts: string) => {
  const event = appMentionEvent({
    text: `<@${FAKE_IDS.botUser}> ${text}`,
    channel: CHANNEL,
    thread_ts: ROOT_TS,
    ts,
  });
  return { event, body: eventCallbackPayload(event, { eventId }), payload: event };
};

for (const database of testDatabases()) {
  describe(`the mention listener on ${database.name}`, () => {
    const fakeSlack = suiteSlack();

    it("answers `status` in the incident's thread, once however often Slack delivers it", async (t) => {
      const { db, incident } = await openIncident(t, database, { channel: CHANNEL });
      await postedInSlack(db, incident.id, ROOT_TS);
      const { deps } = listenerDeps(db);
      const { args, heard } = boltArgs(fakeSlack());
      const status = mention('status', `Ev0MENTION${database.name}`, '1764126000.000301');
      await callListener(appMentionCallback(deps), args, status);
      await callListener(appMentionCallback(deps), args, status);
      const answers = fakeSlack().thread(CHANNEL, ROOT_TS);
      assert.equal(answers.length, 1, 'the retry posts nothing');
      assert.match(answers[0]!.text ?? '', new RegExp(`^#${incident.id} .*web-1.*: open`));
      const post = fakeSlack().callsTo('chat.postMessage').at(-1)!;
      assert.equal(String(post.args.unfurl_links), 'false');
      assert.equal(String(post.args.link_names), 'false');
      assert.deepEqual(heard.errors, []);
    });

    it('logs what fails after the delivery is recorded, and posts nothing', async (t) => {
      const { db, incident } = await openIncident(t, database, { channel: CHANNEL });
      await postedInSlack(db, incident.id, ROOT_TS);
      const { deps } = listenerDeps(db);
      const { args, heard } = boltArgs(fakeSlack());
      const before = fakeSlack().callsTo('chat.postMessage').length;
      // The store goes away between the delivery check and the command.
      let statements = 0;
      deps.db = new Proxy(db, {
        get: (target, prop) =>
          prop === 'executeSql' && ++statements > 1
            ? brokenStore(db).executeSql
            : Reflect.get(target, prop, target),
      });
      await callListener(
        appMentionCallback(deps),
        args,
        mention('status', `Ev0MENTIONX${database.name}`, '1764126000.000302'),
      );
      assert.equal(heard.errors.length, 1);
      assert.match(String(heard.errors[0]), /connection terminated/);
      assert.equal(fakeSlack().callsTo('chat.postMessage').length, before);
    });
  });
}
