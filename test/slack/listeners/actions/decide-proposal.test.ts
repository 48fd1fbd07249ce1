import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { getProposal, type Proposal } from '../../../../src/approvals/service.ts';
import { APPROVE_ACTION, REJECT_ACTION } from '../../../../src/slack/blocks/proposal.ts';
import { decideProposalCallback } from '../../../../src/slack/listeners/actions/decide-proposal.ts';
import { suiteSlack } from '../../../helpers/bot.ts';
import { openIncident, testDatabases } from '../../../helpers/db.ts';
import { blockActionsPayload } from '../../../helpers/fake-slack.ts';
import { boltArgs, brokenStore, callListener, listenerDeps, NOW } from '../../../helpers/listener-args.ts';
import { APPROVER, buttonValue, proposeScript } from '../../../helpers/proposals.ts';

/**
 * A proposal's Approve and Reject buttons, their callback called directly with a built
 * block_actions payload: acked first; an approver's click decides and starts the run once; anyone
 * else, a value naming no proposal or a failing store gets an ephemeral line and nothing changes.
 */
const click = (user: string, actionId: string, value: string) => {
  const body = blockActionsPayload({ user, actions: [{ action_id: actionId, value }] });
  const [action] = body.actions as Array<Record<string, unknown>>;
  return { body, action, payload: action };
};

for (const database of testDatabases()) {
  describe(`the proposal buttons' listener on ${database.name}`, () => {
    const fakeSlack = suiteSlack();

    /**
     * A pending proposal in a new incident, and `user`'s click on its Approve or Reject button
     * carrying `value` (the proposal's own unless given), over a broken store if asked.
     */
    const clickOn = async (
      t: TestContext,
      user: string,
      decision: 'approved' | 'rejected',
      options: { value?: (proposal: Proposal) => string; broken?: boolean } = {},
    ) => {
      const { db, incident } = await openIncident(t, database);
      const proposal = await proposeScript(db, incident.id, NOW);
      const { deps, asked } = listenerDeps(options.broken ? brokenStore(db) : db);
      const { args, heard } = boltArgs(fakeSlack());
      const button = click(
        user,
        decision === 'approved' ? APPROVE_ACTION : REJECT_ACTION,
        (options.value ?? buttonValue)(proposal),
      );
      await callListener(decideProposalCallback(deps, decision), args, button);
      assert.deepEqual(heard.acks, [undefined], 'acked once, with nothing in the ack');
      return { state: (await getProposal(db, proposal.id))?.state, proposal, asked, heard };
    };
    const privately = (text: string) => [{ response_type: 'ephemeral', replace_original: false, text }];

    it("records an approver's Approve, queues the one run and re-renders the message, answering nothing", async (t) => {
      const { state, proposal, asked, heard } = await clickOn(t, APPROVER, 'approved');
      assert.deepEqual(heard.responses, [], 'the edited message is the answer');
      assert.equal(state, 'approved');
      assert.deepEqual(asked.approved, [proposal.id]);
      assert.deepEqual(asked.refreshedProposals, [proposal.id]);
      assert.deepEqual(asked.closed, []);
    });

    it("records an approver's Reject and tells whoever waits that it closed", async (t) => {
      const { state, proposal, asked } = await clickOn(t, APPROVER, 'rejected');
      assert.equal(state, 'rejected');
      assert.deepEqual(asked.closed, [proposal.id]);
      assert.deepEqual(asked.approved, []);
    });

    it('tells someone who may not approve so, privately, and changes nothing', async (t) => {
      const { state, asked, heard } = await clickOn(t, 'U0STRANGER', 'approved');
      assert.equal(heard.responses.length, 1);
      assert.equal(heard.responses[0]!.response_type, 'ephemeral');
      assert.equal(heard.responses[0]!.replace_original, false, 'the proposal message stays');
      assert.match(String(heard.responses[0]!.text), /approve/i);
      assert.equal(state, 'pending');
      assert.deepEqual(asked.approved, []);
      assert.equal(asked.kicks, 0);
    });

    it('refuses a button whose value names no proposal', async (t) => {
      const { state, asked, heard } = await clickOn(t, APPROVER, 'approved', {
        value: () => 'not-a-proposal',
      });
      assert.deepEqual(heard.responses, privately('That button does not name a proposal; nothing changed.'));
      assert.equal(state, 'pending');
      assert.deepEqual(asked.approved, []);
    });

    it('refuses a button showing another text than the proposal has', async (t) => {
      const { state, asked, heard } = await clickOn(t, APPROVER, 'approved', {
        value: (proposal) => buttonValue({ id: proposal.id, sha256: 'f'.repeat(64) }),
      });
      assert.equal(heard.responses.length, 1);
      assert.equal(heard.responses[0]!.response_type, 'ephemeral');
      assert.equal(state, 'pending');
      assert.deepEqual(asked.approved, []);
    });

    it('answers a generic line when the store fails, with the error in the log and not in Slack', async (t) => {
      const { state, asked, heard } = await clickOn(t, APPROVER, 'approved', { broken: true });
      assert.deepEqual(
        heard.responses,
        privately('Something went wrong; nothing ran. It is in the bot log.'),
      );
      assert.equal(heard.errors.length, 1);
      assert.deepEqual(asked.approved, []);
      assert.equal(state, 'pending');
    });
  });
}
