import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getIncident } from '../../../../src/incidents/incidents.ts';
import { investigateCallback } from '../../../../src/slack/listeners/commands/investigate.ts';
import { suiteSlack } from '../../../helpers/bot.ts';
import { migratedDb, openIncident, testDatabases } from '../../../helpers/db.ts';
import { slashCommandPayload } from '../../../helpers/fake-slack.ts';
import { boltArgs, brokenStore, callListener, listenerDeps } from '../../../helpers/listener-args.ts';

/**
 * `/investigate` called directly with a built slash command: acked once before anything else,
 * answered to the asker alone, and a failure answered with a generic line (the error in the log).
 */
for (const database of testDatabases()) {
  describe(`the /investigate listener on ${database.name}`, () => {
    const fakeSlack = suiteSlack();

    it('acks, opens the incident for the host, starts its collection and answers the asker alone', async (t) => {
      const db = await migratedDb(t, database);
      const { deps, asked } = listenerDeps(db);
      const { args, heard } = boltArgs(fakeSlack());
      await callListener(investigateCallback(deps), args, {
        command: slashCommandPayload({ text: 'web-9 disk is full' }),
      });
      assert.deepEqual(heard.acks, [undefined], 'acked once, with nothing in the ack');
      assert.equal(heard.responses.length, 1);
      const [answer] = heard.responses;
      assert.equal((answer as { response_type?: string }).response_type, 'ephemeral');
      const id = Number(/Opened incident #(\d+) for web-9/.exec(String(answer!.text))?.[1]);
      assert.ok(id > 0, String(answer!.text));
      assert.equal((await getIncident(db, id))?.host, 'web-9');
      assert.deepEqual(asked.collections, [{ incidentId: id, host: 'web-9' }]);
      assert.ok(asked.kicks >= 1, 'the outbox is asked to post the root');
      assert.deepEqual(heard.errors, []);
    });

    it('answers the status of the incident #id names', async (t) => {
      const { db, incident } = await openIncident(t, database);
      const { deps } = listenerDeps(db);
      const { args, heard } = boltArgs(fakeSlack());
      await callListener(investigateCallback(deps), args, {
        command: slashCommandPayload({ text: `status #${incident.id}` }),
      });
      assert.equal(heard.acks.length, 1);
      assert.match(String(heard.responses[0]?.text), new RegExp(`^#${incident.id} .*web-1.*: open`));
    });

    it('acks and answers a generic line when the store fails, logging the error and not showing it', async (t) => {
      const db = await migratedDb(t, database);
      const { deps } = listenerDeps(brokenStore(db));
      const { args, heard } = boltArgs(fakeSlack());
      await callListener(investigateCallback(deps), args, {
        command: slashCommandPayload({ text: 'web-9' }),
      });
      assert.equal(heard.acks.length, 1, 'acked before the store was touched');
      assert.deepEqual(heard.responses, [
        { response_type: 'ephemeral', text: 'Something went wrong; it is in the bot log.' },
      ]);
      assert.equal(heard.errors.length, 1);
      assert.match(String(heard.errors[0]), /connection terminated/);
    });
  });
}
