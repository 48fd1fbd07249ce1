import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { markTold } from '../../src/store/agent.ts';
import type { Db } from '../../src/store/db.ts';
import {
  findingsOf,
  findingsQuery,
  insertFinding,
  rewriteFinding,
  unredactedFindings,
} from '../../src/store/findings.ts';
import { startJob } from '../../src/store/jobs.ts';
import { migrate } from '../../src/store/migrate.ts';
import { testDatabases } from '../helpers/db.ts';

/**
 * The one findings query the agent, its tools and the secrets' recall share: each filter on a
 * real store (PGlite and PostgreSQL), and the jsonb body handed back parsed by both drivers.
 */

describe('findingsQuery', () => {
  it('adds a condition and a parameter per filter, the limit last', () => {
    assert.deepEqual(findingsQuery({ incidentId: 7 }, 200), {
      text: 'SELECT id, incident_id, kind, severity, title, body FROM findings WHERE incident_id = $1 ORDER BY id LIMIT $2',
      values: [7, 200],
    });
    const both = findingsQuery({ incidentId: 7, severity: 'critical', untold: true }, 5);
    assert.match(
      both.text,
      /WHERE incident_id = \$1 AND severity = \$2 AND agent_told_at IS NULL ORDER BY id LIMIT \$3$/,
    );
    assert.deepEqual(both.values, [7, 'critical', 5]);
    assert.deepEqual(findingsQuery({ jobId: 3 }, 9).values, [3, 9]);
    assert.match(findingsQuery({ jobId: 3 }, 9).text, /WHERE job_id = \$1 ORDER BY id LIMIT \$2$/);
  });
});

for (const database of testDatabases()) {
  describe(`findings on ${database.name}`, () => {
    let db: Db;
    let incidentId: number;
    let other: number;
    let jobId: number;
    before(async () => {
      db = await database.open();
      await migrate(db);
      const open = async (host: string) =>
        (await openIncidentByHand(db, { host, note: '', user: 'U0A', channel: 'C1' })).incident.id;
      incidentId = await open('web-1');
      other = await open('web-2');
      jobId = await startJob(db, {
        incidentId,
        kind: 'collect-host',
        queueJobId: 'q-1',
        input: { host: 'web-1' },
      });
      const add = (incident: number, severity: string, title: string, detail: string) =>
        insertFinding(db, {
          incidentId: incident,
          jobId,
          kind: 'collect-host',
          severity,
          title,
          body: { detail, redactions: 0 },
        });
      await add(incidentId, 'warning', 'Disk 97% full', 'line one\nline two');
      await add(incidentId, 'critical', 'Core files: 3', '');
      await add(other, 'info', 'Another incident', 'x');
    });
    after(() => db.close());

    it('gives an incident’s findings oldest first, with their body parsed', async () => {
      const found = await findingsOf(db, { incidentId }, 200);
      assert.deepEqual(
        found.map((f) => [f.incidentId, f.severity, f.title, f.body]),
        [
          [incidentId, 'warning', 'Disk 97% full', { detail: 'line one\nline two', redactions: 0 }],
          [incidentId, 'critical', 'Core files: 3', { detail: '', redactions: 0 }],
        ],
      );
      assert.ok(found[0]!.id < found[1]!.id);
      assert.equal((await findingsOf(db, { incidentId }, 1)).length, 1, 'the limit holds');
    });

    it('filters by severity, by what the agent was not told, and by job', async () => {
      const critical = await findingsOf(db, { incidentId, severity: 'critical' }, 200);
      assert.deepEqual(
        critical.map((f) => f.title),
        ['Core files: 3'],
      );
      const all = await findingsOf(db, { incidentId }, 200);
      await markTold(db, { findings: [all[0]!.id], runs: [], closedProposals: [] });
      assert.deepEqual(
        (await findingsOf(db, { incidentId, untold: true }, 200)).map((f) => f.title),
        ['Core files: 3'],
      );
      assert.deepEqual(
        (await findingsOf(db, { jobId }, 200)).map((f) => f.title),
        ['Disk 97% full', 'Core files: 3', 'Another incident'],
      );
    });

    it('lists the findings stored before redaction at rest, until they are rewritten', async () => {
      await db.executeSql(
        `INSERT INTO findings (incident_id, kind, severity, title, body) VALUES ($1, 'old', 'info', 'plain', '{"detail":"d"}')`,
        [other],
      );
      const [old, ...rest] = await unredactedFindings(db, 500);
      assert.deepEqual(rest, []);
      assert.deepEqual([old!.title, old!.body], ['plain', { detail: 'd' }]);
      await rewriteFinding(db, old!.id, 'plain', { ...old!.body, redactions: 0 });
      assert.deepEqual(await unredactedFindings(db, 500), []);
    });
  });
}
