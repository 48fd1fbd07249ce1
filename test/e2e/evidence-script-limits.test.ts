import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getProposal, type Proposal } from '../../src/approvals/service.ts';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { CHANNEL, type IncidentBot, reactOn, startIncidentBot } from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';
import { APPROVER } from '../helpers/proposals.ts';
import { until } from '../helpers/wait.ts';

/**
 * The bounds on all of an evidence script's processes, through the whole bot: configured by the
 * environment (NIGHTSHIFT_SANDBOX_MEMORY_MIB, NIGHTSHIFT_SANDBOX_PROCESSES), approved with a
 * reaction in the fake Slack, run in the real sandbox and its cgroup, the result in the thread.
 * Needs bwrap, python3 and a cgroup the bot can make (root): it fails without them, never skips.
 */

for (const database of testDatabases()) {
  describe(`evidence script bounds through the bot on ${database.name}`, () => {
    let db: Db;
    let bot: Bot;
    let fixture: IncidentBot;
    let reactions = 0;

    before(async () => {
      fixture = await startIncidentBot(database, {
        name: 'script-limits',
        host: 'web-9',
        note: 'memory',
        env: { NIGHTSHIFT_SANDBOX_MEMORY_MIB: '256', NIGHTSHIFT_SANDBOX_PROCESSES: '32' },
      });
      ({ db, bot } = fixture);
    });
    after(async () => {
      await fixture.close();
    });

    /** Proposes an evidence script, approves it with ✅ and waits for its run's reply in the thread. */
    const approveAndRun = async (text: string): Promise<{ proposal: Proposal; reply: string }> => {
      const { proposal, message } = await fixture.propose({ kind: 'script', target: 'evidence', text });
      const eventId = `Ev0LIMITS${String(++reactions).padStart(4, '0')}`;
      await reactOn(bot, { user: APPROVER, name: 'white_check_mark', ts: message.ts }, eventId);
      const reply = await until(
        'the run’s reply in the thread',
        () =>
          (fixture.slack.messages.get(CHANNEL) ?? []).find((m) =>
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
