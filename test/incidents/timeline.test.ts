import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recordDelivery } from '../../src/alerts/intake.ts';
import { systemClock } from '../../src/clock.ts';
import { timeline } from '../../src/incidents/incidents.ts';
import { startJobRun } from '../../src/jobs/workers/job-run.ts';
import { createLogger } from '../../src/log.ts';
import { alertmanagerDisk as alertmanager } from '../helpers/alert-fixtures.ts';
import { migratedDb, testDatabases } from '../helpers/db.ts';

/**
 * The timeline a summary starts from, in the order things happened even where one transaction
 * wrote several rows at the same `now()`: the alert before the incident it opened, a job's start
 * before its findings, its findings in the order they were stored, then how it ended.
 */

for (const database of testDatabases()) {
  describe(`the incident timeline on ${database.name}`, () => {
    it('orders what one transaction wrote, and shows a job when it started and when it ended', async (t) => {
      const db = await migratedDb(t, database);
      const delivered = await recordDelivery(db, 'alertmanager', alertmanager, { channel: '#incidents' });
      assert.ok(delivered.status === 'accepted');
      const incidentId = delivered.incidents[0]!.incidentId;
      const log = createLogger({ level: 'silent' });
      const job = await startJobRun(
        { now: systemClock, db, log },
        'analyze-evidence',
        'job-1',
        incidentId,
        {},
        'Analysing',
        'analysis',
      );
      const titles = ['Zeta comes first', 'Alpha second', 'Mu third', 'Beta fourth', 'Omega fifth'];
      await job.finish(
        titles.map((title) => ({ severity: 'info' as const, title, detail: '' })),
        'Analysis done',
      );
      const entries = (await timeline(db, incidentId)).map((e) => e.what);
      assert.deepEqual(entries, [
        'alert firing: disk on web-1',
        'alert firing: disk on web-1',
        'incident.opened by nightshift: alertId 1',
        'job analyze-evidence started',
        ...titles.map((t) => `finding (info): ${t}`),
        'job analyze-evidence succeeded',
        'job.finished by nightshift: job job-1, queue analyze-evidence',
      ]);
    });
  });
}
