import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { getIncident } from '../../../../src/incidents/incidents.ts';
import {
  MITIGATED_ACTION,
  RESOLVE_ACTION,
  TAKE_COMMAND_ACTION,
} from '../../../../src/slack/blocks/incident.ts';
import { incidentButtonCallback } from '../../../../src/slack/listeners/actions/incident-button.ts';
import { CHANNEL, suiteSlack } from '../../../helpers/bot.ts';
import { openIncident, testDatabases } from '../../../helpers/db.ts';
import { blockActionsPayload } from '../../../helpers/fake-slack.ts';
import { boltArgs, brokenStore, callListener, listenerDeps } from '../../../helpers/listener-args.ts';

/**
 * The buttons of an incident's root (Take command, Mitigated, Resolve), their callback called
 * directly with a built block_actions payload: acked first, the clicker alone told the outcome
 * or why nothing changed.
 */
const USER = 'U0ONCALL1';
const click = (actionId: string, value: string) => {
  const body = blockActionsPayload({ user: USER, actions: [{ action_id: actionId, value }] });
  const [action] = body.actions as Array<Record<string, unknown>>;
  return { body, action, payload: action };
};
const privately = (text: string) => ({ response_type: 'ephemeral', replace_original: false, text });

for (const database of testDatabases()) {
  describe(`the incident buttons' listener on ${database.name}`, () => {
    const fakeSlack = suiteSlack();
    /** USER takes command of a new incident with its root's button, over a broken store if asked. */
    const takeCommand = async (t: TestContext, broken = false) => {
      const { db, incident } = await openIncident(t, database, { channel: CHANNEL });
      const { deps, asked } = listenerDeps(broken ? brokenStore(db) : db);
      const { args, heard } = boltArgs(fakeSlack());
      const button = click(TAKE_COMMAND_ACTION, String(incident.id));
      await callListener(incidentButtonCallback(deps, 'command'), args, button);
      assert.equal(heard.acks.length, 1);
      return { db, incident, asked, heard };
    };

    it('makes the clicker commander and re-renders the root', async (t) => {
      const { db, incident, asked, heard } = await takeCommand(t);
      assert.deepEqual(heard.responses, [privately(`You are the commander of #${incident.id}.`)]);
      assert.equal((await getIncident(db, incident.id))?.commander, USER);
      assert.deepEqual(asked.refreshedIncidents, [incident.id]);
    });

    it('marks the incident mitigated, then resolved, as the commands do', async (t) => {
      const { db, incident } = await openIncident(t, database, { channel: CHANNEL });
      const { deps } = listenerDeps(db);
      const { args, heard } = boltArgs(fakeSlack());
      await callListener(
        incidentButtonCallback(deps, 'mitigated'),
        args,
        click(MITIGATED_ACTION, String(incident.id)),
      );
      assert.equal((await getIncident(db, incident.id))?.status, 'mitigated');
      await callListener(
        incidentButtonCallback(deps, 'resolved'),
        args,
        click(RESOLVE_ACTION, String(incident.id)),
      );
      assert.equal((await getIncident(db, incident.id))?.status, 'resolved');
      assert.equal(heard.acks.length, 2);
      assert.equal(heard.responses.length, 2);
      for (const answer of heard.responses) assert.equal(answer.response_type, 'ephemeral');
      assert.match(String(heard.responses[1]!.text), /resolved/);
    });

    it('changes nothing for a resolved incident, one not there, or a value that names none', async (t) => {
      const { db, incident } = await openIncident(t, database, { channel: CHANNEL });
      const { deps, asked } = listenerDeps(db);
      const { args, heard } = boltArgs(fakeSlack());
      const take = incidentButtonCallback(deps, 'command');
      await callListener(take, args, click(TAKE_COMMAND_ACTION, 'web-1'));
      await callListener(take, args, click(TAKE_COMMAND_ACTION, '999999'));
      await db.executeSql(`UPDATE incidents SET status = 'resolved', resolved_at = now() WHERE id = $1`, [
        incident.id,
      ]);
      await callListener(take, args, click(TAKE_COMMAND_ACTION, String(incident.id)));
      assert.equal(heard.acks.length, 3);
      assert.deepEqual(heard.responses, [
        privately('That button does not name an incident; nothing changed.'),
        privately('There is no incident #999999.'),
        privately(`#${incident.id} is resolved; it has no commander to take.`),
      ]);
      assert.equal(
        (await getIncident(db, incident.id))?.commander,
        incident.commander,
        'the commander stays',
      );
      assert.deepEqual(asked.refreshedIncidents, []);
    });

    it('answers a generic line when the store fails, the error in the log only', async (t) => {
      const { heard } = await takeCommand(t, true);
      assert.deepEqual(heard.responses, [
        privately('Something went wrong; nothing changed. It is in the bot log.'),
      ]);
      assert.equal(heard.errors.length, 1);
    });
  });
}
