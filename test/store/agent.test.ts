import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PolicySchema } from '../../src/approvals/policy.ts';
import { createProposal, finishRun, startRun } from '../../src/approvals/service.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { markTold, untoldRuns } from '../../src/store/agent.ts';
import type { Db } from '../../src/store/db.ts';
import { runMessageKey } from '../../src/store/message-keys.ts';
import { migrate } from '../../src/store/migrate.ts';
import { queueThreadMessage } from '../../src/store/records.ts';
import { testDatabases } from '../helpers/db.ts';
import { approve } from '../helpers/proposals.ts';

/**
 * What the agent reads of a finished run: the run, and the reply the runner queued under the
 * run's key (the same function makes the key on both sides), on PGlite and on PostgreSQL.
 */

describe('runMessageKey', () => {
  it('names a run’s reply, late reply and file', () => {
    assert.equal(runMessageKey(12, 'result'), 'run:12:result');
    assert.equal(runMessageKey(12, 'late'), 'run:12:late');
    assert.equal(runMessageKey(12, 'file'), 'run:12:file');
  });
});

const policy = PolicySchema.parse({ approvers: { users: ['U0A'] } });
const t0 = new Date('2026-12-02T01:00:00Z');

for (const database of testDatabases()) {
  describe(`untold runs on ${database.name}`, () => {
    let db: Db;
    let incidentId: number;
    before(async () => {
      db = await database.open();
      await migrate(db);
      incidentId = (await openIncidentByHand(db, { host: 'web-1', note: '', user: 'U0A', channel: 'C1' }))
        .incident.id;
    });
    after(() => db.close());

    const finished = async (text: string, ok: boolean) => {
      const p = await createProposal(
        db,
        { incidentId, kind: 'script', target: 'evidence', text, why: 'test', proposedBy: 'agent' },
        policy,
        t0,
      );
      await approve(db, p, 'button', new Date(t0.getTime() + 60_000));
      const run = (await startRun(db, p.id, p, new Date(t0.getTime() + 120_000)))!;
      await finishRun(db, p, run.id, { ok, exitCode: ok ? 0 : 1, outputBytes: 5, result: { lines: 1 } });
      return { p, run };
    };

    it('gives each finished run with the text of its reply, and none once told', async () => {
      const replied = await finished('echo one', true);
      const silent = await finished('echo two', false);
      await queueThreadMessage(db, {
        incidentId,
        key: runMessageKey(replied.run.id, 'result'),
        fallbackChannel: 'C1',
        body: { type: 'text', text: 'one &amp; done', blocks: [] },
      });
      // A late reply is not the run's result.
      await queueThreadMessage(db, {
        incidentId,
        key: runMessageKey(silent.run.id, 'late'),
        fallbackChannel: 'C1',
        body: { type: 'text', text: 'late', blocks: [] },
      });
      const runs = await untoldRuns(db, incidentId);
      assert.deepEqual(
        runs.map((r) => [
          r.id,
          r.proposalId,
          r.kind,
          r.target,
          r.state,
          r.exitCode,
          r.outputBytes,
          r.postedText,
        ]),
        [
          [replied.run.id, replied.p.id, 'script', 'evidence', 'succeeded', 0, 5, 'one &amp; done'],
          [silent.run.id, silent.p.id, 'script', 'evidence', 'failed', 1, 5, undefined],
        ],
      );
      assert.deepEqual(runs[0]!.result, { lines: 1 }, 'the result parsed, as both drivers give jsonb');
      await markTold(db, { findings: [], runs: [replied.run.id], closedProposals: [] });
      assert.deepEqual(
        (await untoldRuns(db, incidentId)).map((r) => r.id),
        [silent.run.id],
      );
    });
  });
}
