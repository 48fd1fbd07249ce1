import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getProposal } from '../../../../src/approvals/service.ts';
import { APPROVE_ACTION, REJECT_ACTION } from '../../../../src/slack/blocks/proposal.ts';
import { decideProposalCallback } from '../../../../src/slack/listeners/actions/decide-proposal.ts';
import { openIncident, testDatabases } from '../../../helpers/db.ts';
import { blockActionsPayload, type FakeSlack, startFakeSlack } from '../../../helpers/fake-slack.ts';
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
    let slack: FakeSlack;
    before(async () => {
      slack = await startFakeSlack();
    });
    after(async () => {
      await slack.close();
    });

    it("records an approver's Approve, queues the one run and re-renders the message, answering nothing", async (t) => {
      const { db, incident } = await openIncident(t, database);
      const proposal = await proposeScript(db, incident.id, NOW);
      const { deps, asked } = listenerDeps(db);
      const { args, heard } = boltArgs(slack);
      await callListener(
        decideProposalCallback(deps, 'approved'),
        args,
        click(APPROVER, APPROVE_ACTION, buttonValue(proposal)),
      );
      assert.equal(heard.acks.length, 1);
      assert.deepEqual(heard.responses, [], 'the edited message is the answer');
      assert.equal((await getProposal(db, proposal.id))?.state, 'approved');
      assert.deepEqual(asked.approved, [proposal.id]);
      assert.deepEqual(asked.refreshedProposals, [proposal.id]);
      assert.deepEqual(asked.closed, []);
    });

    it("records an approver's Reject and tells whoever waits that it closed", async (t) => {
      const { db, incident } = await openIncident(t, database);
      const proposal = await proposeScript(db, incident.id, NOW);
      const { deps, asked } = listenerDeps(db);
      const { args, heard } = boltArgs(slack);
      await callListener(
        decideProposalCallback(deps, 'rejected'),
        args,
        click(APPROVER, REJECT_ACTION, buttonValue(proposal)),
      );
      assert.equal(heard.acks.length, 1);
      assert.equal((await getProposal(db, proposal.id))?.state, 'rejected');
      assert.deepEqual(asked.closed, [proposal.id]);
      assert.deepEqual(asked.approved, []);
    });

    it('tells someone who may not approve so, privately, and changes nothing', async (t) => {
      const { db, incident } = await openIncident(t, database);
      const proposal = await proposeScript(db, incident.id, NOW);
      const { deps, asked } = listenerDeps(db);
      const { args, heard } = boltArgs(slack);
      await callListener(
        decideProposalCallback(deps, 'approved'),
        args,
        click('U0STRANGER', APPROVE_ACTION, buttonValue(proposal)),
      );
      assert.equal(heard.acks.length, 1);
      assert.equal(heard.responses.length, 1);
      assert.equal(heard.responses[0]!.response_type, 'ephemeral');
      assert.equal(heard.responses[0]!.replace_original, false, 'the proposal message stays');
      assert.match(String(heard.responses[0]!.text), /approve/i);
      assert.equal((await getProposal(db, proposal.id))?.state, 'pending');
      assert.deepEqual(asked.approved, []);
      assert.equal(asked.kicks, 0);
    });

    it('refuses a button whose value names no proposal, or the text shown before an edit', async (t) => {
      const { db, incident } = await openIncident(t, database);
      const proposal = await proposeScript(db, incident.id, NOW);
      const { deps, asked } = listenerDeps(db);
      const { args, heard } = boltArgs(slack);
      const approve = decideProposalCallback(deps, 'approved');
      await callListener(approve, args, click(APPROVER, APPROVE_ACTION, 'not-a-proposal'));
      await callListener(
        approve,
        args,
        click(APPROVER, APPROVE_ACTION, buttonValue({ id: proposal.id, sha256: 'f'.repeat(64) })),
      );
      assert.equal(heard.acks.length, 2);
      assert.equal(heard.responses[0]!.text, 'That button does not name a proposal; nothing changed.');
      assert.equal(heard.responses.length, 2);
      assert.notEqual(heard.responses[1]!.text, heard.responses[0]!.text);
      assert.equal((await getProposal(db, proposal.id))?.state, 'pending');
      assert.deepEqual(asked.approved, []);
    });

    it('answers a generic line when the store fails, with the error in the log and not in Slack', async (t) => {
      const { db, incident } = await openIncident(t, database);
      const proposal = await proposeScript(db, incident.id, NOW);
      const { deps, asked } = listenerDeps(brokenStore(db));
      const { args, heard } = boltArgs(slack);
      await callListener(
        decideProposalCallback(deps, 'approved'),
        args,
        click(APPROVER, APPROVE_ACTION, buttonValue(proposal)),
      );
      assert.equal(heard.acks.length, 1);
      assert.deepEqual(heard.responses, [
        {
          response_type: 'ephemeral',
          replace_original: false,
          text: 'Something went wrong; nothing ran. It is in the bot log.',
        },
      ]);
      assert.equal(heard.errors.length, 1);
      assert.deepEqual(asked.approved, []);
      assert.equal((await getProposal(db, proposal.id))?.state, 'pending');
    });
  });
}
