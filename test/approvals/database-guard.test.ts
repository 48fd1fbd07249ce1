import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Policy, PolicySchema } from '../../src/approvals/policy.ts';
import { proposalHash } from '../../src/approvals/proposal.ts';
import * as service from '../../src/approvals/service.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { openIncidentStore, testDatabases } from '../helpers/db.ts';

// The service under test, as one namespace.
const { createProposal, decideProposal, expireProposals, finishRun, getProposal, getRun, startRun } = service;
type Proposal = service.Proposal;

/**
 * The database's own guard against writes behind the service's back (issue 12 §2): whatever an
 * UPDATE, DELETE, TRUNCATE or INSERT through the store's SQL does to proposals, approvals and
 * runs, nothing runs without the approvals the policy asked for when it was proposed. Each test
 * is an attack; the run is refused at the end of every one, on PGlite and on PostgreSQL.
 */
const policy = (over: object = {}): Policy =>
  PolicySchema.parse({ approvers: { users: ['U0A', 'U0B', 'U0C'] }, ...over });
const t0 = new Date('2026-12-02T01:00:00Z');
const later = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

for (const database of testDatabases()) {
  describe(`the database guard of the approval gate on ${database.name}`, () => {
    /** A schema of its own per attack: a TRUNCATE that got through must not spoil the next one. */
    const setup = async () => {
      const { db, incident } = await openIncidentStore(database, { note: '', user: 'U0A' });
      const propose = (
        text: string,
        p: Policy = policy(),
        by = 'agent',
        kind: 'script' | 'pull' = 'script',
      ) =>
        createProposal(
          db,
          {
            incidentId: incident.id,
            kind,
            target: kind === 'pull' ? 'web-1' : 'evidence',
            text,
            why: 'test',
            proposedBy: by,
          },
          p,
          t0,
        );
      const decide = (
        p: Proposal,
        user: string,
        at = later(1),
        decision: 'approved' | 'rejected' = 'approved',
      ) =>
        decideProposal(db, {
          proposalId: p.id,
          decision,
          user,
          via: 'button',
          sha256: p.sha256,
          isApprover: true,
          now: at,
        });
      /** The attacker's write: whether the database took it does not matter, the run must not start. */
      const tamper = async (sql: string, values: unknown[] = []) => {
        try {
          await db.executeSql(sql, values);
          return 'taken';
        } catch (error) {
          return (error as Error).message;
        }
      };
      /** Neither the runner nor a bare INSERT starts a run, and none is recorded. */
      const assertNoRun = async (p: Proposal, at = later(2)) => {
        await assert.rejects(
          db.executeSql('INSERT INTO runs (proposal_id, sha256) VALUES ($1, $2)', [p.id, p.sha256]),
          /run refused|duplicate key/,
        );
        const started = await startRun(db, p.id, p, at).catch(() => undefined);
        assert.equal(started, undefined, 'the runner started it');
        const { rows } = await db.executeSql<{ n: number }>(
          'SELECT count(*)::int AS n FROM runs WHERE proposal_id = $1',
          [p.id],
        );
        assert.equal(rows[0]!.n, 0, 'a run was recorded');
      };
      return { db, incidentId: incident.id, propose, decide, tamper, assertNoRun };
    };

    it('refuses the issue’s attack: two approvers asked for, one given, then approvals_required = 1 and approved', async () => {
      const { db, propose, decide, tamper, assertNoRun } = await setup();
      try {
        const p = await propose('du -sh /var/lib/docker', policy({ approvalsRequired: 2 }));
        assert.equal((await decide(p, 'U0A')).kind, 'recorded');
        const weakened = await tamper(
          `UPDATE proposals SET approvals_required = 1, state = 'approved' WHERE id = $1`,
          [p.id],
        );
        await assertNoRun(p);
        assert.match(weakened, /approvals_required cannot change/);
        assert.match(
          await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [p.id]),
          /cannot be approved: 1 of 2 approvals/,
        );
        // The second approver still completes it, and it runs once.
        assert.equal((await decide(p, 'U0B', later(2))).kind, 'recorded');
        assert.ok(await startRun(db, p.id, p, later(3)));
      } finally {
        await db.close();
      }
    });

    it('refuses the issue’s attack: an expired proposal revived by UPDATE and approved', async () => {
      const { db, propose, decide, tamper, assertNoRun } = await setup();
      try {
        const p = await propose('uptime');
        assert.ok((await expireProposals(db, later(31))).some((e) => e.id === p.id));
        const revived = await tamper(
          `UPDATE proposals SET state = 'pending', expires_at = $2 WHERE id = $1`,
          [p.id, later(120)],
        );
        const late = await decide(p, 'U0A', later(40));
        await assertNoRun(p, later(41));
        assert.match(revived, /expires_at cannot change/);
        assert.equal(late.kind === 'refused' && late.reason, 'closed');
        // Revived without a new expiry, with an approval dated back to before it expired, by hand.
        const q = await propose('uptime -p');
        await expireProposals(db, later(31));
        const writes = [
          await tamper(`UPDATE proposals SET state = 'pending' WHERE id = $1`, [q.id]),
          await tamper(
            `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
             VALUES ($1, $2, 'approved', 'U0A', 'button', $3)`,
            [q.id, q.sha256, later(5)],
          ),
          await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [q.id]),
        ];
        await assertNoRun(q, later(6));
        assert.match(writes[0]!, /is expired: it cannot become pending/);
        assert.match(writes[1]!, /decision refused: proposal \d+ is expired/);
        assert.match(writes[2]!, /is expired: it cannot become approved/);
      } finally {
        await db.close();
      }
    });

    it('keeps the time limits: expires_at and created_at cannot be moved to take a late approval or a late run', async () => {
      const { db, propose, decide, tamper, assertNoRun } = await setup();
      try {
        const p = await propose('df -h');
        const extended = await tamper(`UPDATE proposals SET expires_at = $2 WHERE id = $1`, [
          p.id,
          later(600),
        ]);
        const late = await decide(p, 'U0A', later(45));
        await assertNoRun(p, later(46));
        assert.match(extended, /expires_at cannot change/);
        assert.equal(late.kind === 'refused' && late.reason, 'expired');
        // Approved in time, then its window widened from the other end for a run long after.
        const q = await propose('df -i');
        assert.equal((await decide(q, 'U0A', later(1))).kind, 'recorded');
        const widened = await tamper(`UPDATE proposals SET created_at = $2 WHERE id = $1`, [
          q.id,
          later(-600),
        ]);
        // By the test's clock an hour passed, by the database's a moment: the runner's check is the one.
        assert.equal(await startRun(db, q.id, q, later(60)).catch(() => undefined), undefined);
        assert.equal(await getRun(db, q.id), undefined);
        assert.match(widened, /created_at cannot change/);
        assert.equal((await getProposal(db, q.id))!.state, 'expired', 'approved at 1 min, not started by 31');
      } finally {
        await db.close();
      }
    });

    it('keeps the policy a proposal was made under: the proposer cannot become someone else or be allowed to approve', async () => {
      const { db, propose, decide, tamper, assertNoRun } = await setup();
      try {
        const p = await propose('cat /proc/meminfo', policy({ selfApproval: false }), 'U0A');
        const allowed = await tamper(`UPDATE proposals SET self_approval_allowed = true WHERE id = $1`, [
          p.id,
        ]);
        const self = await decide(p, 'U0A');
        await assertNoRun(p);
        assert.match(allowed, /self_approval_allowed cannot change/);
        assert.equal(self.kind === 'refused' && self.reason, 'self_approval');
        const q = await propose('cat /proc/loadavg', policy({ selfApproval: false }), 'U0A');
        const renamed = await tamper(`UPDATE proposals SET proposed_by = 'agent' WHERE id = $1`, [q.id]);
        const selfQ = await decide(q, 'U0A');
        await assertNoRun(q);
        assert.match(renamed, /proposed_by cannot change/);
        assert.equal(selfQ.kind === 'refused' && selfQ.reason, 'self_approval');
        // By hand, behind the service's back: refused by the database.
        const r = await propose('cat /proc/vmstat', policy({ selfApproval: false }), 'U0A');
        const byHand = await tamper(
          `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
           VALUES ($1, $2, 'approved', 'U0A', 'cli', $3)`,
          [r.id, r.sha256, later(1)],
        );
        const forced = await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [r.id]);
        await assertNoRun(r);
        assert.match(byHand, /needs someone else to approve it/);
        assert.match(forced, /0 of 1 approvals/);
      } finally {
        await db.close();
      }
    });

    it('never runs a proposal its proposer rejected, even with self-approval off and its state set back', async () => {
      const { db, propose, decide, tamper, assertNoRun } = await setup();
      try {
        const p = await propose('ls /var/crash', policy({ selfApproval: false }), 'U0A');
        assert.equal((await decide(p, 'U0B', later(1))).kind, 'recorded');
        const rejected = await decide(p, 'U0A', later(2), 'rejected');
        assert.equal(rejected.kind === 'recorded' && rejected.proposal.state, 'rejected');
        const forced = await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [p.id]);
        await assertNoRun(p);
        assert.match(forced, /is rejected: it cannot become approved/);
      } finally {
        await db.close();
      }
    });

    it('takes an approval only while the proposal is open by the database’s clock, whatever date the client gives it', async () => {
      const { db, incidentId, decide, tamper, assertNoRun } = await setup();
      try {
        // Made by hand with a window of 200 ms; the client's clock is the fake one of this test.
        const text = 'cat /etc/hostname';
        const sha256 = proposalHash({ kind: 'script', target: 'evidence', text });
        const { rows } = await db.executeSql<{ id: string }>(
          `INSERT INTO proposals (incident_id, kind, target, text, sha256, proposed_by, created_at, expires_at)
           VALUES ($1, 'script', 'evidence', $2, $3, 'agent', $4, $5) RETURNING id`,
          [incidentId, text, sha256, t0, new Date(t0.getTime() + 200)],
        );
        const p = (await getProposal(db, Number(rows[0]!.id)))!;
        await sleep(400);
        // The client says 50 ms after it was made; the database knows better.
        const viaBot = await decide(p, 'U0A', new Date(t0.getTime() + 50)).catch((e: Error) => e.message);
        const byHand = await tamper(
          `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
           VALUES ($1, $2, 'approved', 'U0B', 'button', $3)`,
          [p.id, p.sha256, new Date(t0.getTime() + 10)],
        );
        await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [p.id]);
        await assertNoRun(p, new Date(t0.getTime() + 100));
        // The bot takes the first of the two clocks to run out: refused as expired, and closed.
        assert.equal(typeof viaBot === 'object' && viaBot.kind === 'refused' && viaBot.reason, 'expired');
        assert.match(byHand, /by the database's clock|proposal \d+ is expired/);
        assert.equal((await getProposal(db, p.id))!.state, 'expired');
      } finally {
        await db.close();
      }
    });

    it('starts a run only within the window after its approval by the database’s clock', async () => {
      const { db, incidentId, tamper, assertNoRun } = await setup();
      try {
        // A window of 1.5 s, approved at once (in the same transaction), run after it closed.
        const text = 'cat /etc/os-release';
        const sha256 = proposalHash({ kind: 'script', target: 'evidence', text });
        const id = await db.transaction(async (tx) => {
          const { rows } = await tx.executeSql<{ id: string }>(
            `INSERT INTO proposals (incident_id, kind, target, text, sha256, proposed_by, created_at, expires_at)
             VALUES ($1, 'script', 'evidence', $2, $3, 'agent', $4, $5) RETURNING id`,
            [incidentId, text, sha256, t0, new Date(t0.getTime() + 1500)],
          );
          await tx.executeSql(
            `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
             VALUES ($1, $2, 'approved', 'U0A', 'button', $3)`,
            [rows[0]!.id, sha256, new Date(t0.getTime() + 1400)],
          );
          await tx.executeSql(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [rows[0]!.id]);
          return Number(rows[0]!.id);
        });
        const p = (await getProposal(db, id))!;
        await sleep(1800);
        // The approval was dated at the end of the window, so the client's clock would still run it.
        const byHand = await tamper('INSERT INTO runs (proposal_id, sha256) VALUES ($1, $2)', [
          p.id,
          p.sha256,
        ]);
        const viaBot = await startRun(db, p.id, p, new Date(t0.getTime() + 1500)).catch(
          (e: Error) => e.message,
        );
        await assertNoRun(p, new Date(t0.getTime() + 1500));
        assert.match(byHand, /not started within/);
        // The runner takes the first of the two clocks to run out: no run, and the proposal expired.
        assert.equal(viaBot, undefined);
        assert.equal((await getProposal(db, p.id))!.state, 'expired');
      } finally {
        await db.close();
      }
    });

    it('takes approvals by the policy only for pulls, in the transaction that proposed them', async () => {
      const { db, propose, tamper, assertNoRun } = await setup();
      try {
        const p = await propose('curl -s http://127.0.0.1:9100/metrics', policy({ approvalsRequired: 2 }));
        const forged = [];
        for (const [who, via] of [
          ['policy', 'policy'],
          ['policy#2', 'policy'],
          ['policy', 'button'],
        ])
          forged.push(
            await tamper(
              `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
               VALUES ($1, $2, 'approved', $3, $4, $5)`,
              [p.id, p.sha256, who, via, later(1)],
            ),
          );
        const forced = await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [p.id]);
        await assertNoRun(p);
        for (const f of forged) assert.match(f, /only the policy|policy approves only pulls/);
        assert.match(forced, /0 of 2 approvals/);
        // A pull that the policy did not make automatic is not approved by it afterwards either.
        const pull = await propose('a1b2:/app/core.1', policy(), 'nightshift', 'pull');
        assert.equal(pull.state, 'pending');
        const forgedPull = await tamper(
          `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
           VALUES ($1, $2, 'approved', 'policy', 'policy', $3)`,
          [pull.id, pull.sha256, later(1)],
        );
        await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [pull.id]);
        await assertNoRun(pull);
        assert.match(forgedPull, /policy approves only pulls, when they are proposed/);
        // The automatic pull itself still runs.
        const auto = await propose(
          'a1b2:/app/core.2',
          policy({ automatic: ['pull'], approvalsRequired: 2 }),
          'nightshift',
          'pull',
        );
        assert.equal(auto.state, 'approved');
        assert.ok(await startRun(db, auto.id, auto, t0));
      } finally {
        await db.close();
      }
    });

    it('never deletes a proposal, so its id cannot come back under a weaker policy', async () => {
      const { db, incidentId, propose, decide, tamper, assertNoRun } = await setup();
      try {
        const p = await propose('journalctl -n 200', policy({ approvalsRequired: 2 }));
        const deleted = await tamper('DELETE FROM proposals WHERE id = $1', [p.id]);
        const again = await tamper(
          `INSERT INTO proposals (id, incident_id, kind, target, text, sha256, proposed_by, created_at, expires_at, approvals_required)
           VALUES ($1, $2, 'script', 'evidence', $3, $4, 'agent', $5, $6, 1)`,
          [p.id, incidentId, p.text, p.sha256, t0, later(30)],
        );
        assert.equal((await decide(p, 'U0A')).kind, 'recorded');
        await assertNoRun(p);
        assert.match(deleted, /proposals are kept: DELETE/);
        assert.match(again, /duplicate key/);
        assert.equal((await getProposal(db, p.id))!.approvalsRequired, 2);
        assert.match(await tamper('TRUNCATE proposals CASCADE'), /are kept: TRUNCATE|append-only: TRUNCATE/);
        assert.ok(await getProposal(db, p.id));
      } finally {
        await db.close();
      }
    });

    it('never truncates approvals, so a rejection cannot be wiped and replaced by an approval', async () => {
      const { db, propose, decide, tamper, assertNoRun } = await setup();
      try {
        const p = await propose('ss -tanp');
        assert.equal((await decide(p, 'U0A', later(1))).kind, 'recorded');
        assert.equal((await decide(p, 'U0B', later(2), 'rejected')).kind, 'recorded');
        const writes = [
          await tamper('TRUNCATE approvals'),
          await tamper(`UPDATE proposals SET state = 'pending' WHERE id = $1`, [p.id]),
          await tamper(
            `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
             VALUES ($1, $2, 'approved', 'U0C', 'button', $3)`,
            [p.id, p.sha256, later(3)],
          ),
          await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [p.id]),
        ];
        await assertNoRun(p, later(4));
        assert.match(writes[0]!, /append-only: TRUNCATE/);
        assert.match(writes[1]!, /is rejected: it cannot become pending/);
      } finally {
        await db.close();
      }
    });

    it('never runs a proposal twice, whatever is done to its run row', async () => {
      const { db, propose, decide, tamper } = await setup();
      try {
        const p = await propose('free -m');
        // The same text proposed again: a run row can point at it (the hash matches).
        const twin = await propose('free -m');
        await decide(p, 'U0A');
        const run = await startRun(db, p.id, p, later(2));
        assert.ok(run);
        await finishRun(db, p, run.id, { ok: true, exitCode: 0 });
        const runsOfText = async () =>
          (
            await db.executeSql<{ n: number }>('SELECT count(*)::int AS n FROM runs WHERE sha256 = $1', [
              p.sha256,
            ])
          ).rows[0]!.n;
        // The run moved to the twin, the proposal approved again: a second run of what ran.
        const moved = await tamper('UPDATE runs SET proposal_id = $2 WHERE id = $1', [run.id, twin.id]);
        const reopened = await tamper(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [p.id]);
        assert.equal(await startRun(db, p.id, p, later(3)).catch(() => undefined), undefined);
        assert.equal(await runsOfText(), 1, 'it ran twice');
        // The run deleted, or the table emptied.
        const deleted = await tamper('DELETE FROM runs WHERE id = $1', [run.id]);
        const truncated = await tamper('TRUNCATE runs CASCADE');
        assert.equal(await startRun(db, p.id, p, later(3)).catch(() => undefined), undefined);
        assert.equal(await runsOfText(), 1, 'it ran twice');
        assert.match(moved, /run \d+ is fixed/);
        assert.match(reopened, /is done: it cannot become approved/);
        assert.match(deleted, /runs are kept: DELETE/);
        assert.match(truncated, /runs are kept: TRUNCATE/);
        assert.match(
          await tamper(`UPDATE runs SET state = 'running' WHERE id = $1`, [run.id]),
          /is succeeded: it cannot become running/,
        );
        assert.equal((await getRun(db, p.id))!.id, run.id);
        assert.equal((await getProposal(db, p.id))!.state, 'done');
      } finally {
        await db.close();
      }
    });

    it('keeps its triggers on in a session that turns triggers off (session_replication_role = replica)', async () => {
      const { db, propose, decide, assertNoRun } = await setup();
      try {
        const p = await propose('ps aux', policy({ approvalsRequired: 2 }));
        assert.equal((await decide(p, 'U0A')).kind, 'recorded');
        const q = await propose('ps -ef');
        // PGlite runs as a superuser, who may set it; the PostgreSQL role of the tests may not.
        const attack = async (steps: string[], values: unknown[]) =>
          db
            .transaction(async (tx) => {
              await tx.executeSql('SET LOCAL session_replication_role = replica');
              for (const step of steps) await tx.executeSql(step, values);
              return 'taken';
            })
            .catch((error: Error) => error.message);
        const weakened = await attack(
          [
            `UPDATE proposals SET approvals_required = 1, state = 'approved' WHERE id = $1`,
            `INSERT INTO runs (proposal_id, sha256) SELECT id, sha256 FROM proposals WHERE id = $1`,
          ],
          [p.id],
        );
        const bare = await attack(
          [`INSERT INTO runs (proposal_id, sha256) SELECT id, sha256 FROM proposals WHERE id = $1`],
          [q.id],
        );
        await assertNoRun(p);
        await assertNoRun(q);
        assert.match(weakened, /approvals_required cannot change|permission denied/);
        assert.match(bare, /run refused: proposal \d+ has 0 of 1 approvals|permission denied/);
      } finally {
        await db.close();
      }
    });

    it('reads the real proposals, not a temporary table of the same name', async () => {
      const { db, propose, decide, assertNoRun } = await setup();
      try {
        const p = await propose('lsof -nP', policy({ approvalsRequired: 2 }));
        assert.equal((await decide(p, 'U0A')).kind, 'recorded');
        // pg_temp comes first for tables: an unqualified name in a trigger would find this one.
        const shadowed = await db
          .transaction(async (tx) => {
            await tx.executeSql(
              `CREATE TEMP TABLE proposals ON COMMIT DROP AS SELECT * FROM ${db.schema}.proposals WHERE id = $1`,
              [p.id],
            );
            await tx.executeSql(`UPDATE pg_temp.proposals SET approvals_required = 1, state = 'approved'`);
            await tx.executeSql(`INSERT INTO ${db.schema}.runs (proposal_id, sha256) VALUES ($1, $2)`, [
              p.id,
              p.sha256,
            ]);
            return 'taken';
          })
          .catch((error: Error) => error.message);
        await assertNoRun(p);
        assert.match(shadowed, /run refused: proposal \d+ has 1 of 2 approvals/);
      } finally {
        await db.close();
      }
    });

    it('starts every proposal pending, and fixes every column of it but its state and the agent’s mark', async () => {
      const { db, incidentId, propose, tamper, assertNoRun } = await setup();
      try {
        const text = 'cat /etc/resolv.conf';
        const sha256 = proposalHash({ kind: 'script', target: 'evidence', text });
        assert.match(
          await tamper(
            `INSERT INTO proposals (incident_id, kind, target, text, sha256, proposed_by, created_at, expires_at, state)
             VALUES ($1, 'script', 'evidence', $2, $3, 'agent', $4, $5, 'approved')`,
            [incidentId, text, sha256, t0, later(30)],
          ),
          /starts pending, not approved/,
        );
        const p = await propose(text);
        const other = await openIncidentByHand(db, { host: 'web-2', note: '', user: 'U0A', channel: 'C1' });
        for (const [column, value] of [
          ['id', p.id + 1000],
          ['incident_id', other.incident.id],
          ['proposed_by', 'U0A'],
          ['why', 'changed'],
          ['expects', 'changed'],
          ['created_at', later(-10)],
          ['expires_at', later(10)],
          ['approvals_required', 2],
          ['self_approval_allowed', false],
          ['recorded_at', later(0)],
          ['recorded_xid', 1],
        ] as const)
          assert.match(
            await tamper(`UPDATE proposals SET ${column} = $2 WHERE id = $1`, [p.id, value]),
            new RegExp(`${column} cannot change`),
            column,
          );
        // What the bot itself changes still changes.
        await db.executeSql('UPDATE proposals SET agent_told_at = now() WHERE id = $1', [p.id]);
        await db.executeSql(`UPDATE proposals SET state = 'rejected' WHERE id = $1`, [p.id]);
        await assertNoRun(p);
      } finally {
        await db.close();
      }
    });

    it('still runs the legitimate flow: two approvers, not the proposer, an expiry and a rejection on the way', async () => {
      const { db, propose, decide } = await setup();
      try {
        const two = policy({ approvalsRequired: 2, selfApproval: false });
        const p = await propose('grep -c icy- strings.txt', two, 'U0A');
        assert.equal((await decide(p, 'U0B', later(1))).kind, 'recorded');
        const done = await decide(p, 'U0C', later(2));
        assert.equal(done.kind === 'recorded' && done.proposal.state, 'approved');
        const run = await startRun(db, p.id, p, later(3));
        assert.ok(run);
        await finishRun(db, p, run.id, { ok: false, exitCode: 1, error: 'exit 1' });
        await db.executeSql('UPDATE runs SET agent_told_at = now() WHERE id = $1', [run.id]);
        assert.equal((await getProposal(db, p.id))!.state, 'failed');
        const q = await propose('grep -c icy- strings2.txt', two, 'U0A');
        assert.ok((await expireProposals(db, later(30))).some((e) => e.id === q.id));
        const r = await propose('grep -c icy- strings3.txt', two, 'U0A');
        await decide(r, 'U0B', later(1));
        await decide(r, 'U0C', later(2));
        assert.equal((await decide(r, 'U0B', later(3), 'rejected')).kind, 'recorded');
        assert.equal((await getProposal(db, r.id))!.state, 'rejected');
      } finally {
        await db.close();
      }
    });
  });
}
