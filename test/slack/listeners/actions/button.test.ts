import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ListenerDeps } from '../../../../src/slack/deps.ts';
import { type ButtonArgs, buttonListener } from '../../../../src/slack/listeners/actions/button.ts';
import { decideProposalCallback } from '../../../../src/slack/listeners/actions/decide-proposal.ts';
import { incidentButtonCallback } from '../../../../src/slack/listeners/actions/incident-button.ts';

/** A click's arguments, recording what the listener did, in order. */
function click(value: string | undefined) {
  const events: string[] = [];
  const replies: Array<Record<string, unknown>> = [];
  const errors: unknown[] = [];
  const args = {
    ack: async () => void events.push('ack'),
    body: { user: { id: 'U1' }, channel: { id: 'C1' } },
    action: { type: 'button', action_id: 'x', value },
    respond: async (message: Record<string, unknown>) => {
      events.push('respond');
      replies.push(message);
    },
    logger: { error: (e: unknown) => errors.push(e), warn: () => {}, info: () => {}, debug: () => {} },
  } as unknown as ButtonArgs;
  return { args, events, replies, errors };
}

test('buttonListener: acks before handling and answers the clicker alone', async () => {
  const c = click('1');
  await buttonListener('failed', async (_args, say) => {
    c.events.push('handle');
    await say('done');
  })(c.args);
  assert.deepEqual(c.events, ['ack', 'handle', 'respond']);
  assert.deepEqual(c.replies, [{ response_type: 'ephemeral', replace_original: false, text: 'done' }]);
});

test('buttonListener: a failure is logged and answered with its words', async () => {
  const c = click('1');
  const boom = new Error('boom');
  await buttonListener('Something went wrong.', async () => {
    throw boom;
  })(c.args);
  assert.deepEqual(c.events, ['ack', 'respond']);
  assert.deepEqual(c.errors, [boom]);
  assert.equal(c.replies[0]!.text, 'Something went wrong.');
});

/** Deps whose database fails every statement: the listeners must say so, not crash. */
const failingDeps = {
  db: {
    executeSql: async () => {
      throw new Error('database down');
    },
  },
  channel: 'C1',
  refresh: async () => {},
} as unknown as ListenerDeps;

test('the proposal and incident buttons refuse a value that names nothing, and change nothing', async () => {
  const proposal = click('not-a-proposal');
  await decideProposalCallback(failingDeps, 'approved')(proposal.args);
  assert.equal(proposal.replies[0]!.text, 'That button does not name a proposal; nothing changed.');
  const incident = click('x12');
  await incidentButtonCallback(failingDeps, 'command')(incident.args);
  assert.equal(incident.replies[0]!.text, 'That button does not name an incident; nothing changed.');
  assert.deepEqual([...proposal.errors, ...incident.errors], []);
});

test('the incident button logs a database failure and tells the clicker nothing changed', async () => {
  const c = click('12');
  await incidentButtonCallback(failingDeps, 'command')(c.args);
  assert.equal(c.events[0], 'ack');
  assert.equal((c.errors[0] as Error).message, 'database down');
  assert.equal(c.replies[0]!.text, 'Something went wrong; nothing changed. It is in the bot log.');
});
