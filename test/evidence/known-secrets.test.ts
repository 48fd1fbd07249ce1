import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { knownSecretsPath, recallSecrets, rememberSecrets } from '../../src/evidence/known-secrets.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { sweep } from '../../src/jobs/sweeper.ts';
import { createLogger } from '../../src/log.ts';
import { migrate } from '../../src/store/migrate.ts';
import { testDatabases } from '../helpers/db.ts';

/** The secrets of an incident's findings, kept beside its evidence instead of in the database. */
describe('known secrets beside the evidence', () => {
  it('appends, reads back, skips a line cut short, and is private to the bot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nightshift-known-secrets-'));
    try {
      assert.deepEqual(await recallSecrets(dir, 1), []);
      await rememberSecrets(dir, 1, ['hunter2', 'hunter2', 'line\nbreak']);
      await rememberSecrets(dir, 1, []);
      await rememberSecrets(dir, 2, ['other-incident']);
      appendFileSync(knownSecretsPath(dir, 1), '"cut sho');
      assert.deepEqual(await recallSecrets(dir, 1), ['hunter2', 'line\nbreak']);
      assert.deepEqual(await recallSecrets(dir, 2), ['other-incident']);
      assert.equal(statSync(knownSecretsPath(dir, 1)).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, '.known-secrets')).mode & 0o777, 0o700);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const [database] = testDatabases();
  it(`goes with the evidence: the sweeper removes a list past the retention (${database!.name})`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nightshift-known-secrets-'));
    const db = await database!.open();
    try {
      await migrate(db);
      await rememberSecrets(dir, 1001, ['old-secret']);
      await rememberSecrets(dir, 1002, ['new-secret']);
      const old = new Date(Date.now() - 15 * 86_400_000);
      utimesSync(knownSecretsPath(dir, 1001), old, old);
      // An incident whose old list stays: cores pulled 5 days ago, with no new secret, are still here.
      const { incident } = await openIncidentByHand(db, {
        host: 'web-1',
        note: '',
        user: 'U0X',
        channel: 'C1',
      });
      await db.executeSql(
        `INSERT INTO evidence_artifacts (incident_id, host, remote_path, local_path, state, completed_at)
         VALUES ($1, 'web-1', '/core', $2, 'complete', now() - interval '5 days')`,
        [incident.id, join(dir, 'core')],
      );
      await rememberSecrets(dir, incident.id, ['still-in-a-core']);
      utimesSync(knownSecretsPath(dir, incident.id), old, old);
      await sweep(
        { now: systemClock, db, log: createLogger({ level: 'silent' }), evidenceDays: 14, evidenceDir: dir },
        new Date(),
      );
      assert.equal(existsSync(knownSecretsPath(dir, 1001)), false);
      assert.deepEqual(await recallSecrets(dir, 1002), ['new-secret']);
      assert.deepEqual(await recallSecrets(dir, incident.id), ['still-in-a-core']);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
