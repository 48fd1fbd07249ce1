import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WebClient } from '@slack/web-api';
import { PolicySchema } from '../../src/approvals/policy.ts';
import {
  createProposal,
  decideProposal,
  finishRun,
  getProposal,
  type Proposal,
  startRun,
} from '../../src/approvals/service.ts';
import { systemClock } from '../../src/clock.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { createLogger } from '../../src/log.ts';
import { slackPoster } from '../../src/slack/app.ts';
import { drainOutbox } from '../../src/slack/outbox.ts';
import type { SlackPoster } from '../../src/slack/poster.ts';
import { queueProposalMessage, refreshProposalMessage } from '../../src/slack/proposal-messages.ts';
import { editThreadMessage } from '../../src/slack/thread-edits.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { queueThreadMessage } from '../../src/store/records.ts';
import { testDatabases } from '../helpers/db.ts';
import { FAKE_IDS, type FakeMessage, type FakeSlack, startFakeSlack } from '../helpers/fake-slack.ts';

/**
 * Edits of one message never step back, against the fake Slack through the real WebClient: an
 * approval's edit that reaches Slack after the run's, an edit rendered from a read older than the
 * message's, an edit made while the message is being posted, an edit Slack refused once. In
 * each, what the fake Slack holds for the message last is its latest state, and what it showed
 * along the way only moved forward.
 */
const CHANNEL = FAKE_IDS.channel;
const APPROVER = 'U0APPROVER';
const policy = PolicySchema.parse({ approvers: { users: [APPROVER] } });
const log = createLogger({ level: 'silent' });

const ORDER = ['Waiting for approval', 'Approved', 'Running', 'Done'];
/** The state a proposal message shows: its text ends with it (`Proposal #3 (where): Running`). */
const stateOf = (text: string | undefined) => (text ?? '').slice((text ?? '').lastIndexOf('): ') + 3);
/** Every state the message showed in Slack, the first post to the last edit. */
const shown = (m: FakeMessage) => [...m.history.map((h) => h.text), m.text].map(stateOf);

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

/** A poster whose first call to `method` that `match` picks waits until `release()`. */
function holding(poster: SlackPoster, method: 'update' | 'postMessage', match: (text: string) => boolean) {
  const reached = gate();
  const released = gate();
  let held = false;
  const hold = async (text: string) => {
    if (held || !match(text)) return;
    held = true;
    reached.open();
    await released.opened;
  };
  const wrapped: SlackPoster = {
    ...poster,
    update: async (args) => {
      if (method === 'update') await hold(args.text);
      return poster.update(args);
    },
    postMessage: async (args) => {
      if (method === 'postMessage') await hold(args.text);
      return poster.postMessage(args);
    },
  };
  return { poster: wrapped, reached: reached.opened, release: released.open };
}

/** A store whose first statement matching `pattern` waits until `release()`. */
function holdingStore(db: Db, pattern: RegExp) {
  const reached = gate();
  const released = gate();
  let held = false;
  const store = new Proxy(db, {
    get(target, prop) {
      if (prop === 'executeSql')
        return async (text: string, values?: readonly unknown[]) => {
          if (!held && pattern.test(text)) {
            held = true;
            reached.open();
            await released.opened;
          }
          return target.executeSql(text, values);
        };
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, reached: reached.opened, release: released.open };
}

for (const database of testDatabases()) {
  describe(`edits of a proposal message on ${database.name}`, () => {
    let slack: FakeSlack;
    let poster: SlackPoster;
    let db: Db;
    let incidentId: number;

    before(async () => {
      slack = await startFakeSlack();
      poster = slackPoster(
        new WebClient(slack.botToken, {
          slackApiUrl: slack.apiUrl,
          retryConfig: { retries: 0 },
        }),
      );
    });
    after(async () => {
      await slack.close();
    });
    beforeEach(async () => {
      db = await database.open();
      await migrate(db);
      ({
        incident: { id: incidentId },
      } = await openIncidentByHand(db, { host: 'web-1', note: 'disk', user: APPROVER, channel: CHANNEL }));
    });

    const propose = async (text: string): Promise<Proposal> => {
      const proposal = await createProposal(
        db,
        { incidentId, kind: 'script', target: 'evidence', text, why: 'test', proposedBy: 'agent' },
        policy,
        new Date(),
      );
      await queueProposalMessage(db, proposal, CHANNEL, new Date());
      return proposal;
    };
    const approve = async (p: Proposal) => {
      const outcome = await decideProposal(db, {
        proposalId: p.id,
        decision: 'approved',
        user: APPROVER,
        via: 'reaction',
        sha256: p.sha256,
        isApprover: true,
        now: new Date(),
      });
      assert.equal(outcome.kind, 'recorded');
    };
    /** What the runner does to the message: running, then done, straight to Slack. */
    const run = async (p: Proposal) => {
      const started = await startRun(db, p.id, { kind: p.kind, target: p.target, text: p.text }, new Date());
      assert.ok(started);
      await refreshProposalMessage(db, poster, p.id, new Date(), undefined, log);
      await finishRun(db, (await getProposal(db, p.id))!, started.id, { ok: true, exitCode: 0 });
      await refreshProposalMessage(db, poster, p.id, new Date(), ':white_check_mark: exit 0', log);
    };
    const posted = async (p: Proposal): Promise<FakeMessage> => {
      const { rows } = await db.executeSql<{ ts: string | null }>(
        'SELECT ts FROM thread_messages WHERE dedup_key = $1',
        [`proposal:${p.id}`],
      );
      const ts = rows[0]?.ts;
      assert.ok(ts, 'the proposal message is posted');
      return slack.message(CHANNEL, ts)!;
    };
    const queuedState = async (p: Proposal) => {
      const { rows } = await db.executeSql<{ body: unknown }>(
        'SELECT body FROM thread_messages WHERE dedup_key = $1',
        [`proposal:${p.id}`],
      );
      const body = rows[0]!.body;
      return stateOf((typeof body === 'string' ? JSON.parse(body) : (body as { text: string })).text);
    };
    /** The states only move forward. */
    const assertForward = (states: string[]) => {
      const ranks = states.map((s) => ORDER.indexOf(s));
      assert.ok(
        ranks.every((r, i) => r >= 0 && (i === 0 || r >= ranks[i - 1]!)),
        `the message stepped back: ${states.join(' → ')}`,
      );
    };

    it("never ends on Approved when the approval's edit reaches Slack after the run's", async () => {
      try {
        const p = await propose('echo approved late');
        await drainOutbox(db, poster, log, systemClock);
        await approve(p);
        // The approval's listener renders Approved; its chat.update is slow to reach Slack.
        const listener = holding(poster, 'update', (text) => text.endsWith('Approved'));
        const approval = refreshProposalMessage(db, listener.poster, p.id, new Date(), undefined, log);
        await listener.reached;
        // Meanwhile the runner starts and finishes, editing the message itself.
        await run(p);
        listener.release();
        await approval;
        const message = await posted(p);
        assert.equal(stateOf(message.text), 'Done', `Slack shows: ${message.text}`);
        assert.match(JSON.stringify(message.blocks), /exit 0/);
        assertForward(shown(message));
      } finally {
        await db.close();
      }
    });

    it('refuses an edit rendered before the run started that is written after it ended', async () => {
      try {
        const p = await propose('echo read early');
        await drainOutbox(db, poster, log, systemClock);
        await approve(p);
        // The listener reads the proposal (approved), then its write of the body is held.
        const listener = holdingStore(db, /UPDATE thread_messages/);
        const approval = refreshProposalMessage(listener.store, poster, p.id, new Date(), undefined, log);
        await listener.reached;
        await run(p);
        listener.release();
        await approval;
        assert.equal(await queuedState(p), 'Done', 'the queued body keeps the newer state');
        const message = await posted(p);
        assert.equal(stateOf(message.text), 'Done', `Slack shows: ${message.text}`);
        assertForward(shown(message));
      } finally {
        await db.close();
      }
    });

    it('sends an edit made while the message was being posted once the post is through', async () => {
      try {
        const p = await propose('echo edited in flight');
        const outbox = holding(poster, 'postMessage', (text) => text.startsWith(`Proposal #${p.id} `));
        const drain = drainOutbox(db, outbox.poster, log, systemClock);
        await outbox.reached;
        // Approved while the post (of the pending body) is on its way: no ts yet, so no chat.update.
        await approve(p);
        await refreshProposalMessage(db, poster, p.id, new Date(), undefined, log);
        outbox.release();
        await drain;
        const message = await posted(p);
        assert.equal(stateOf(message.text), 'Approved', `Slack shows: ${message.text}`);
        assertForward(shown(message));
      } finally {
        await db.close();
      }
    });

    it('sends again, from the outbox drain, an edit Slack refused', async () => {
      try {
        const p = await propose('echo refused once');
        await drainOutbox(db, poster, log, systemClock);
        slack.failNext('chat.update', { error: 'fatal_error' });
        await approve(p);
        await refreshProposalMessage(db, poster, p.id, new Date(), undefined, log);
        assert.equal(stateOf((await posted(p)).text), 'Waiting for approval', 'Slack refused the edit');
        // Its retry is due (the outbox tests move not_before the same way).
        await db.executeSql(
          'UPDATE thread_messages SET edit_not_before = now() WHERE edit_not_before IS NOT NULL',
        );
        await drainOutbox(db, poster, log, systemClock);
        const message = await posted(p);
        assert.equal(stateOf(message.text), 'Approved', `Slack shows: ${message.text}`);
      } finally {
        await db.close();
      }
    });

    it('keeps the higher-ranked body of a ranked message, whatever order the edits are written in', async () => {
      try {
        await queueThreadMessage(db, {
          incidentId,
          key: 'progress:test',
          fallbackChannel: CHANNEL,
          body: { type: 'text', text: 'line 0', blocks: [] },
        });
        await drainOutbox(db, poster, log, systemClock);
        await editThreadMessage(
          db,
          poster,
          'progress:test',
          { text: 'line 2', blocks: [] },
          { log, rank: 2 },
        );
        await editThreadMessage(
          db,
          poster,
          'progress:test',
          { text: 'line 1', blocks: [] },
          { log, rank: 1 },
        );
        const { rows } = await db.executeSql<{ ts: string; body: unknown }>(
          'SELECT ts, body FROM thread_messages WHERE dedup_key = $1',
          ['progress:test'],
        );
        const body = rows[0]!.body;
        assert.equal(
          (typeof body === 'string' ? JSON.parse(body) : (body as { text: string })).text,
          'line 2',
        );
        assert.equal(slack.message(CHANNEL, rows[0]!.ts)!.text, 'line 2');
      } finally {
        await db.close();
      }
    });
  });
}
