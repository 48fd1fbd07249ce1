import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PolicySchema } from '../../src/approvals/policy.ts';
import { createProposal, getProposal, type Proposal } from '../../src/approvals/service.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import type { Bot } from '../../src/main.ts';
import { queueProposalMessage } from '../../src/slack/proposal-messages.ts';
import type { Db } from '../../src/store/db.ts';
import { botUrl, CHANNEL, SIGNING_SECRET, startTestBot } from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';
import {
  eventCallbackBody,
  type FakeSlack,
  reactionAddedEvent,
  signedRequest,
  startFakeSlack,
} from '../helpers/fake-slack.ts';
import { until } from '../helpers/wait.ts';

/**
 * The bounds on all of an evidence script's processes, through the whole bot: configured by the
 * environment (NIGHTSHIFT_SANDBOX_MEMORY_MIB, NIGHTSHIFT_SANDBOX_PROCESSES), approved with a
 * reaction in the fake Slack, run in the real sandbox and its cgroup, the result in the thread.
 * Needs bwrap, python3 and a cgroup the bot can make (root): it fails without them, never skips.
 */
const APPROVER = 'U0APPROVER';

for (const database of testDatabases()) {
  describe(`evidence script bounds through the bot on ${database.name}`, () => {
    let slack: FakeSlack;
    let db: Db;
    let bot: Bot;
    let work: string;
    let incidentId: number;
    let reactions = 0;

    before(async () => {
      work = mkdtempSync(join(tmpdir(), 'nightshift-script-limits-'));
      slack = await startFakeSlack();
      db = await database.open();
      bot = await startTestBot({
        db,
        slack,
        env: {
          NIGHTSHIFT_APPROVERS: APPROVER,
          NIGHTSHIFT_DATA_DIR: work,
          NIGHTSHIFT_SANDBOX_MEMORY_MIB: '256',
          NIGHTSHIFT_SANDBOX_PROCESSES: '32',
        },
      });
      ({
        incident: { id: incidentId },
      } = await openIncidentByHand(db, { host: 'web-9', note: 'memory', user: APPROVER, channel: CHANNEL }));
      await bot.slack!.pump.kick();
    });
    after(async () => {
      await bot.close();
      await db.close();
      await slack.close();
      rmSync(work, { recursive: true, force: true });
    });

    /** Proposes an evidence script, approves it with ✅ and waits for its run's reply in the thread. */
    const approveAndRun = async (text: string): Promise<{ proposal: Proposal; reply: string }> => {
      const now = new Date();
      const proposal = await createProposal(
        db,
        { incidentId, kind: 'script', target: 'evidence', text, why: 'test', proposedBy: 'nightshift' },
        PolicySchema.parse({ approvers: { users: [APPROVER] } }),
        now,
      );
      await queueProposalMessage(db, proposal, CHANNEL, now);
      await bot.slack!.pump.kick();
      const message = await until('the proposal message', () =>
        (slack.messages.get(CHANNEL) ?? []).find((m) =>
          (m.text ?? '').startsWith(`Proposal #${proposal.id} `),
        ),
      );
      await signedRequest(
        botUrl(bot, '/slack/events'),
        SIGNING_SECRET,
        eventCallbackBody(
          reactionAddedEvent({
            user: APPROVER,
            reaction: 'white_check_mark',
            item: { type: 'message', channel: CHANNEL, ts: message.ts },
          }),
          { eventId: `Ev0LIMITS${String(++reactions).padStart(4, '0')}` },
        ),
      );
      const reply = await until(
        'the run’s reply in the thread',
        () =>
          (slack.messages.get(CHANNEL) ?? []).find((m) =>
            (m.text ?? '').includes(`Script on the evidence (proposal #${proposal.id})`),
          )?.text,
        60_000,
      );
      return { proposal, reply };
    };

    it('holds eight processes of 100 MiB at once to NIGHTSHIFT_SANDBOX_MEMORY_MIB, and says so in the thread', async () => {
      const { proposal, reply } = await approveAndRun(`for i in 1 2 3 4 5 6 7 8; do python3 -c "
import time
b = bytearray(100 * 2**20)
for i in range(0, len(b), 4096): b[i] = 1
time.sleep(2)" & done; wait`);
      assert.match(
        reply,
        /^:x: Script on the evidence \(proposal #\d+\): [^\n]*, \d+ process(es)? killed at the memory limit \(256\.0 MiB for all its processes\)/,
      );
      assert.equal((await getProposal(db, proposal.id))!.state, 'failed');
    });

    it('holds a script to NIGHTSHIFT_SANDBOX_PROCESSES at once, and says so in the thread', async () => {
      const { reply } = await approveAndRun(
        '(i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done); set -- /proc/[0-9]*; echo "$# at once"',
      );
      assert.match(reply, /\d+ forks? refused at the process limit \(32 at once\)/);
      const seen = Number(/(\d+) at once\n/.exec(reply)?.[1]);
      assert.ok(seen > 4 && seen <= 32, `${seen} processes at once`);
    });
  });
}
