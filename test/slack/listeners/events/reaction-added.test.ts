import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getProposal } from '../../../../src/approvals/service.ts';
import { getIncident } from '../../../../src/incidents/incidents.ts';
import { reactionAddedCallback } from '../../../../src/slack/listeners/events/reaction-added.ts';
import { queueProposalMessage } from '../../../../src/slack/proposal-messages.ts';
import { CHANNEL, suiteSlack } from '../../../helpers/bot.ts';
import { openIncident, testDatabases } from '../../../helpers/db.ts';
import { eventCallbackPayload, reactionAddedEvent } from '../../../helpers/fake-slack.ts';
import {
  boltArgs,
  brokenStore,
  callListener,
  listenerDeps,
  NOW,
  postedInSlack,
} from '../../../helpers/listener-args.ts';
import { APPROVER, proposeScript } from '../../../helpers/proposals.ts';

/**
 * reaction_added, its callback called directly with a built event: ✅ or ❌ on a proposal's
 * message decides it as the buttons do (a retried delivery changes nothing), 🙋 on a root takes
 * command, someone who may not decide is told so privately in the thread, anything else is let be.
 */
const ROOT_TS = '1764126000.000100';
const PROPOSAL_TS = '1764126000.000200';
const reaction = (user: string, name: string, ts: string, eventId: string, type = 'message') => {
  const event = reactionAddedEvent({ user, reaction: name, item: { type: 'message', channel: CHANNEL, ts } });
  if (type !== 'message') (event.item as { type: string }).type = type;
  return { event, body: eventCallbackPayload(event, { eventId }), payload: event };
};

for (const database of testDatabases()) {
  describe(`the reaction listener on ${database.name}`, () => {
    const fakeSlack = suiteSlack();

    /** An incident in the channel with one pending proposal, both as Slack has them. */
    const posted = async (t: Parameters<typeof openIncident>[0]) => {
      const { db, incident } = await openIncident(t, database, { channel: CHANNEL });
      const proposal = await proposeScript(db, incident.id, NOW);
      await queueProposalMessage(db, proposal, CHANNEL, NOW);
      await postedInSlack(db, incident.id, ROOT_TS, [{ id: proposal.id, ts: PROPOSAL_TS }]);
      return { db, incident, proposal };
    };

    it("approves with an approver's ✅ once, however often Slack delivers it", async (t) => {
      const { db, proposal } = await posted(t);
      const { deps, asked } = listenerDeps(db);
      const { args, heard } = boltArgs(fakeSlack());
      const approve = reaction(APPROVER, 'white_check_mark', PROPOSAL_TS, 'Ev0LISTEN001');
      await callListener(reactionAddedCallback(deps), args, approve);
      await callListener(reactionAddedCallback(deps), args, approve);
      assert.equal((await getProposal(db, proposal.id))?.state, 'approved');
      assert.deepEqual(asked.approved, [proposal.id], 'one run, the retry changed nothing');
      assert.deepEqual(heard.errors, []);
      assert.deepEqual(fakeSlack().ephemerals, []);
    });

    it('rejects with ❌ (a skin-tone variant too) and tells whoever waits', async (t) => {
      const { db, proposal } = await posted(t);
      const { deps, asked } = listenerDeps(db);
      const { args } = boltArgs(fakeSlack());
      await callListener(
        reactionAddedCallback(deps),
        args,
        reaction(APPROVER, 'x::skin-tone-2', PROPOSAL_TS, 'Ev0LISTEN002'),
      );
      assert.equal((await getProposal(db, proposal.id))?.state, 'rejected');
      assert.deepEqual(asked.closed, [proposal.id]);
    });

    it('tells someone who may not decide so, privately in the thread, and changes nothing', async (t) => {
      const { db, proposal } = await posted(t);
      const { deps, asked } = listenerDeps(db);
      const { args } = boltArgs(fakeSlack());
      const before = fakeSlack().ephemerals.length;
      await callListener(
        reactionAddedCallback(deps),
        args,
        reaction('U0STRANGER', 'white_check_mark', PROPOSAL_TS, 'Ev0LISTEN003'),
      );
      const told = fakeSlack().ephemerals.slice(before);
      assert.equal(told.length, 1);
      assert.equal(told[0]!.user, 'U0STRANGER');
      assert.equal(told[0]!.thread_ts, ROOT_TS, "in the incident's thread, named by its root");
      assert.equal((await getProposal(db, proposal.id))?.state, 'pending');
      assert.deepEqual(asked.approved, []);
    });

    it('makes whoever raises a hand on the root its commander', async (t) => {
      const { db, incident } = await posted(t);
      const { deps, asked } = listenerDeps(db);
      const { args } = boltArgs(fakeSlack());
      await callListener(
        reactionAddedCallback(deps),
        args,
        reaction('U0ONCALL2', 'raising_hand', ROOT_TS, 'Ev0LISTEN004'),
      );
      assert.equal((await getIncident(db, incident.id))?.commander, 'U0ONCALL2');
      assert.deepEqual(asked.refreshedIncidents, [incident.id]);
    });

    it('lets other reactions, and reactions on files, be without touching the store', async (t) => {
      const { db, proposal } = await posted(t);
      const { deps, asked } = listenerDeps(brokenStore(db));
      const { args, heard } = boltArgs(fakeSlack());
      await callListener(
        reactionAddedCallback(deps),
        args,
        reaction(APPROVER, 'thumbsup', PROPOSAL_TS, 'Ev0LISTEN005'),
      );
      await callListener(
        reactionAddedCallback(deps),
        args,
        reaction(APPROVER, 'white_check_mark', PROPOSAL_TS, 'Ev0LISTEN006', 'file'),
      );
      assert.deepEqual(heard.errors, [], 'the broken store was never asked');
      assert.deepEqual(asked, listenerDeps(db).asked);
      assert.equal((await getProposal(db, proposal.id))?.state, 'pending');
    });

    it("leaves a failing store's error to Bolt's error handler and posts nothing", async (t) => {
      const { db } = await posted(t);
      const { deps } = listenerDeps(brokenStore(db));
      const { args, heard } = boltArgs(fakeSlack());
      const before = fakeSlack().calls.length;
      await assert.rejects(
        callListener(
          reactionAddedCallback(deps),
          args,
          reaction(APPROVER, 'white_check_mark', PROPOSAL_TS, 'Ev0LISTEN007'),
        ),
        /connection terminated/,
        'the delivery check comes before the try: app.error() hears of it',
      );
      assert.deepEqual(heard.errors, []);
      assert.equal(fakeSlack().calls.length, before);
    });
  });
}
