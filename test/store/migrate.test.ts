import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { proposalHash } from '../../src/approvals/proposal.ts';
import { getProposal, startRun } from '../../src/approvals/service.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { openPostgres } from '../../src/store/adapters/pg.ts';
import type { Db } from '../../src/store/db.ts';
import { loadMigrations, migrate } from '../../src/store/migrate.ts';
import { migratedDb, POSTGRES_URL, testDatabases } from '../helpers/db.ts';
import { approve } from '../helpers/proposals.ts';

const TABLES = [
  'agent_messages',
  'agent_state',
  'alert_deliveries',
  'alerts',
  'approvals',
  'audit_log',
  'channel_messages',
  'evidence_artifacts',
  'findings',
  'incident_progress',
  'incidents',
  'jobs',
  'proposals',
  'runs',
  'schema_migrations',
  'slack_events',
  'thread_messages',
];

async function tables(db: Db): Promise<string[]> {
  const { rows } = await db.executeSql<{ table_name: string }>(
    'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
    [db.schema],
  );
  return rows.map((r) => r.table_name);
}

async function openIncident(db: Db, group = 'web-1:disk:/'): Promise<number> {
  const { rows } = await db.executeSql<{ id: number }>(
    `INSERT INTO incidents (group_key, host, problem, title, opened_by) VALUES ($1, 'web-1', 'disk', 'Disk full on web-1', 'test') RETURNING id`,
    [group],
  );
  return Number(rows[0]!.id);
}

for (const database of testDatabases()) {
  describe(`migrations on ${database.name}`, () => {
    it('create every table once; running again applies nothing', async () => {
      const db = await database.open();
      try {
        assert.deepEqual(
          await migrate(db),
          loadMigrations().map((m) => m.version),
        );
        assert.deepEqual(await tables(db), TABLES);
        assert.deepEqual(await migrate(db), []);
      } finally {
        await db.close();
      }
    });

    it('keep the audit log append-only in the database itself', async (t) => {
      const db = await migratedDb(t, database);
      await db.executeSql(`INSERT INTO audit_log (actor, action) VALUES ('U1', 'proposed')`);
      await assert.rejects(db.executeSql(`UPDATE audit_log SET actor = 'U2'`), /append-only: UPDATE/);
      await assert.rejects(db.executeSql('DELETE FROM audit_log'), /append-only: DELETE/);
      await assert.rejects(db.executeSql('TRUNCATE audit_log'), /append-only: TRUNCATE/);
      const { rows } = await db.executeSql<{ actor: string }>('SELECT actor FROM audit_log');
      assert.deepEqual(rows, [{ actor: 'U1' }]);
    });

    it('allow one open incident per host and problem, and a new one after resolution', async (t) => {
      const db = await migratedDb(t, database);
      const first = await openIncident(db);
      await assert.rejects(openIncident(db), /incidents_one_open_per_group/);
      await db.executeSql(`UPDATE incidents SET status = 'resolved', resolved_at = now() WHERE id = $1`, [
        first,
      ]);
      const second = await openIncident(db);
      assert.notEqual(second, first);
    });

    it('tie an approval to the exact hash of the proposal it approves', async (t) => {
      const db = await migratedDb(t, database);
      const incident = await openIncident(db);
      const { rows } = await db.executeSql<{ id: number }>(
        `INSERT INTO proposals (incident_id, kind, target, text, sha256, proposed_by, expires_at)
         VALUES ($1, 'sql', 'app', 'SELECT 1', 'aaaa', 'agent', now() + interval '30 minutes') RETURNING id`,
        [incident],
      );
      const proposal = Number(rows[0]!.id);
      await db.executeSql(
        `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via) VALUES ($1, 'aaaa', 'approved', 'U1', 'button')`,
        [proposal],
      );
      await assert.rejects(
        db.executeSql(
          `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via) VALUES ($1, 'bbbb', 'approved', 'U2', 'button')`,
          [proposal],
        ),
        /foreign key/,
      );
    });

    it('fix the approval gate of a database that already has proposals, approvals and runs (0009)', async () => {
      const db = await database.open();
      try {
        const all = loadMigrations();
        await migrate(db, all.slice(0, 8));
        const { incident } = await openIncidentByHand(db, {
          host: 'web-1',
          note: '',
          user: 'U1',
          channel: 'C1',
        });
        // What the bot of 0008 wrote: a proposal pending, one approved, one that ran.
        const now = new Date();
        const expires = new Date(now.getTime() + 30 * 60_000);
        const propose = async (text: string, state: 'pending' | 'approved' | 'done') => {
          const sha256 = proposalHash({ kind: 'script', target: 'evidence', text });
          const { rows } = await db.executeSql<{ id: string }>(
            `INSERT INTO proposals (incident_id, kind, target, text, sha256, proposed_by, created_at, expires_at)
             VALUES ($1, 'script', 'evidence', $2, $3, 'agent', $4, $5) RETURNING id`,
            [incident.id, text, sha256, now, expires],
          );
          const id = Number(rows[0]!.id);
          if (state !== 'pending') {
            await db.executeSql(
              `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via, decided_at)
               VALUES ($1, $2, 'approved', 'U0A', 'button', $3)`,
              [id, sha256, now],
            );
            await db.executeSql(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [id]);
          }
          if (state === 'done') {
            await db.executeSql('INSERT INTO runs (proposal_id, sha256) VALUES ($1, $2)', [id, sha256]);
            await db.executeSql(`UPDATE proposals SET state = 'done' WHERE id = $1`, [id]);
          }
          return (await getProposal(db, id))!;
        };
        const pending = await propose('uptime', 'pending');
        const approved = await propose('df -h', 'approved');
        const ran = await propose('free -m', 'done');

        assert.deepEqual(
          await migrate(db, all),
          all.slice(8).map((m) => m.version),
        );
        const { rows } = await db.executeSql<{ n: number }>(
          `SELECT (SELECT count(*) FROM proposals WHERE recorded_at = created_at)::int
                + (SELECT count(*) FROM approvals WHERE recorded_at = decided_at)::int AS n`,
        );
        assert.equal(rows[0]!.n, 3 + 2, 'the old rows keep the times they had');
        assert.ok(await startRun(db, approved.id, approved, now), 'approved before, runs after');
        await approve(db, pending, 'button', now); // fails unless the decision is recorded
        assert.ok(await startRun(db, pending.id, pending, now), 'pending before, approved and run after');
        await assert.rejects(
          db.executeSql(`UPDATE proposals SET state = 'approved' WHERE id = $1`, [ran.id]),
          /is done: it cannot become approved/,
        );
        await assert.rejects(db.executeSql('TRUNCATE approvals'), /append-only: TRUNCATE/);
      } finally {
        await db.close();
      }
    });

    it('roll a failed transaction back whole', async (t) => {
      const db = await migratedDb(t, database);
      await assert.rejects(
        db.transaction(async (tx) => {
          await openIncident(tx, 'a');
          await openIncident(tx, 'a');
        }),
      );
      const { rows } = await db.executeSql<{ n: number }>('SELECT count(*)::int AS n FROM incidents');
      assert.equal(rows[0]!.n, 0);
    });

    it('refuse a database newer than the code, naming the migration', async (t) => {
      const db = await migratedDb(t, database);
      await db.executeSql(`INSERT INTO schema_migrations (version, name) VALUES (999, 'future')`);
      await assert.rejects(migrate(db), /migration 999 that this version of Nightshift does not know/);
    });
  });
}

describe('migrations on one PostgreSQL from several connections at once', {
  skip: !POSTGRES_URL && 'needs DATABASE_URL',
}, () => {
  it('apply each migration exactly once', async () => {
    const first = await testDatabases()[1]!.open();
    const others = await Promise.all(
      Array.from({ length: 4 }, () => openPostgres(POSTGRES_URL!, first.schema, { max: 1 })),
    );
    try {
      const applied = await Promise.all([first, ...others].map((db) => migrate(db)));
      assert.deepEqual(
        applied.flat().sort((a, b) => a - b),
        loadMigrations().map((m) => m.version),
      );
    } finally {
      await Promise.all(others.map((db) => db.close()));
      await first.close();
    }
  });
});
