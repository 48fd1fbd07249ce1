import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { incidentSecrets } from '../../src/agent/turn.ts';
import { PolicySchema } from '../../src/approvals/policy.ts';
import { createProposal } from '../../src/approvals/service.ts';
import { systemClock } from '../../src/clock.ts';
import { knownSecretsPath, recallSecrets, rememberSecrets } from '../../src/evidence/known-secrets.ts';
import { redactStoredFindings } from '../../src/jobs/redact-stored-findings.ts';
import { startJobRun } from '../../src/jobs/workers/job-run.ts';
import { createLogger } from '../../src/log.ts';
import { proposalView } from '../../src/slack/proposal-messages.ts';
import { openIncident, testDatabases } from '../helpers/db.ts';
import { tempDir } from '../helpers/test-end.ts';

/**
 * What a job and a proposal put in front of Slack is redacted: a collection's findings and its
 * done text (a secret named in one finding is hidden in every other), and a proposal's why and
 * expects as its message shows them.
 */

const log = createLogger({ level: 'silent' });
const SECRET = 'hunter2secret';
const PASSWORD = 'hunter2';
const DSN = `postgres://u:${PASSWORD}@db/x`;
const BOT_TOKEN = 'xoxb-1234567890-abcdefghijklmnop';

/** A collect-host job's run for `incidentId`, started as the collect worker starts it. */
const collectionRun = (deps: Parameters<typeof startJobRun>[0], jobId: string, incidentId: number) =>
  startJobRun(deps, 'collect-host', jobId, incidentId, {}, 'started', 'collection');

for (const database of testDatabases()) {
  describe(`redaction before Slack on ${database.name}`, () => {
    it('redacts findings and the done text a job queues for the thread', async (t) => {
      const { db, incident } = await openIncident(t, database);
      const run = await collectionRun({ now: systemClock, db, log }, 'q-1', incident.id);
      await run.finish(
        [
          { severity: 'warning', title: 'Environment of app', detail: `DB_PASSWORD=${SECRET}` },
          {
            severity: 'info',
            title: `Log mentions ${SECRET}`,
            detail: 'token: ghp_abcdefghijklmnopqrstuvwxyz0123',
          },
        ],
        `done; last line: api_key=${SECRET}`,
      );
      const { rows } = await db.executeSql<{ dedup_key: string; body: unknown }>(
        `SELECT dedup_key, body FROM thread_messages
         WHERE dedup_key LIKE 'job:q-1:%' OR dedup_key = $1 ORDER BY id`,
        [`status:${incident.id}`],
      );
      const bodies = rows.map((r) => (typeof r.body === 'string' ? r.body : JSON.stringify(r.body)));
      assert.deepEqual(
        rows.map((r) => r.dedup_key),
        [`status:${incident.id}`, 'job:q-1:findings:0'],
        'the status message (started, then done, in place) and one reply with both findings',
      );
      for (const body of bodies) {
        assert.ok(!body.includes(SECRET), body);
        assert.ok(!body.includes('ghp_abcdef'), body);
      }
      assert.match(bodies[1]!, /Log mentions \[REDACTED\]/, 'the bare copy in another finding is hidden');
      assert.match(bodies[0]!, /api_key=\[REDACTED\]/);
    });

    it('stores findings redacted, with their count, and keeps the secrets beside the evidence instead', async (t) => {
      const { db, incident } = await openIncident(t, database);
      const evidenceDir = tempDir(t, 'nightshift-job-run-');
      // What a collection hands over: lines from the host, as they were.
      const run = await collectionRun({ now: systemClock, db, log, evidenceDir }, 'q-2', incident.id);
      await run.finish(
        [
          {
            severity: 'warning',
            title: 'Kernel log mentions core dumps',
            detail: `app[42]: connecting to ${DSN}; slack ${BOT_TOKEN}`,
          },
          {
            severity: 'info',
            title: 'Largest directory',
            detail: `/var/lib/app/${PASSWORD}/cache 4.2 GiB`,
          },
        ],
        'done',
      );
      const { rows } = await db.executeSql<{ title: string; body: unknown }>(
        'SELECT title, body FROM findings WHERE incident_id = $1 ORDER BY id',
        [incident.id],
      );
      assert.equal(rows.length, 2);
      const stored = rows.map((r) => ({
        title: r.title,
        body: (typeof r.body === 'string' ? JSON.parse(r.body) : r.body) as object,
      }));
      for (const row of stored)
        for (const secret of [PASSWORD, BOT_TOKEN, 'xoxb-'])
          assert.ok(!JSON.stringify(row).includes(secret), `${secret} in ${JSON.stringify(row)}`);
      assert.deepEqual(stored, [
        {
          title: 'Kernel log mentions core dumps',
          body: {
            detail: 'app[42]: connecting to postgres://u:[REDACTED]@db/x; slack xox-[REDACTED]',
            redactions: 2,
          },
        },
        // The password, bare here, was named in the other finding's URL.
        {
          title: 'Largest directory',
          body: { detail: '/var/lib/app/[REDACTED]/cache 4.2 GiB', redactions: 1 },
        },
      ]);
      // The values themselves stay on the bot host, beside the evidence, for the agent.
      const file = knownSecretsPath(evidenceDir, incident.id);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual((await recallSecrets(evidenceDir, incident.id)).sort(), [BOT_TOKEN, PASSWORD].sort());
      // A later job whose finding holds only a bare copy of a secret an earlier job found.
      const later = await collectionRun({ now: systemClock, db, log, evidenceDir }, 'q-3', incident.id);
      await later.finish(
        [{ severity: 'info', title: 'Largest file', detail: `/tmp/${PASSWORD}.log 1 GiB` }],
        'done',
      );
      const last = await db.executeSql<{ body: unknown }>(
        'SELECT body FROM findings WHERE incident_id = $1 ORDER BY id DESC LIMIT 1',
        [incident.id],
      );
      assert.deepEqual(
        typeof last.rows[0]!.body === 'string' ? JSON.parse(last.rows[0]!.body) : last.rows[0]!.body,
        {
          detail: '/tmp/[REDACTED].log 1 GiB',
          redactions: 1,
        },
      );
      const known = await incidentSecrets(db, incident.id, evidenceDir);
      assert.equal(known.scrub(`conn ${PASSWORD} ok`).text, 'conn [REDACTED] ok');
      assert.equal((await incidentSecrets(db, incident.id)).size, 0, 'the database alone no longer has them');
    });

    it('redacts in place, once, the findings an older version stored in plain text', async (t) => {
      const { db, incident } = await openIncident(t, database);
      const evidenceDir = tempDir(t, 'nightshift-job-run-');
      for (const [title, detail] of [
        ['Kernel log mentions core dumps', `app[42]: connecting to ${DSN}`],
        [`Largest directory: /var/lib/${PASSWORD}`, '4.2 GiB'],
        ['Disk 97% full', 'on /'],
        ['Largest file', '/tmp/s3cr3t-from-a-job.log'],
      ])
        await db.executeSql(
          `INSERT INTO findings (incident_id, kind, severity, title, body) VALUES ($1, 'collect-host', 'info', $2, $3)`,
          [incident.id, title, JSON.stringify({ detail })],
        );
      // A secret a job (or an earlier page of rows) found, whose bare copy is in an old row.
      await rememberSecrets(evidenceDir, incident.id, ['s3cr3t-from-a-job']);
      assert.equal(await redactStoredFindings(db, evidenceDir), 4);
      const { rows } = await db.executeSql<{ title: string; body: unknown }>(
        'SELECT title, body FROM findings WHERE incident_id = $1 ORDER BY id',
        [incident.id],
      );
      assert.deepEqual(
        rows.map((r) => [r.title, typeof r.body === 'string' ? JSON.parse(r.body) : r.body]),
        [
          [
            'Kernel log mentions core dumps',
            { detail: 'app[42]: connecting to postgres://u:[REDACTED]@db/x', redactions: 1 },
          ],
          ['Largest directory: /var/lib/[REDACTED]', { detail: '4.2 GiB', redactions: 1 }],
          ['Disk 97% full', { detail: 'on /', redactions: 0 }],
          ['Largest file', { detail: '/tmp/[REDACTED].log', redactions: 1 }],
        ],
      );
      assert.deepEqual(await recallSecrets(evidenceDir, incident.id), ['s3cr3t-from-a-job', PASSWORD]);
      assert.equal(await redactStoredFindings(db, evidenceDir), 0, 'once');
    });

    it('redacts a proposal’s why and expects in the view its Slack message is built from', async (t) => {
      const { db, incident } = await openIncident(t, database);
      const proposal = await createProposal(
        db,
        {
          incidentId: incident.id,
          kind: 'script',
          target: 'evidence',
          text: 'grep -c icy- strings.txt',
          why: `the core holds PASSWORD=${SECRET}`,
          expects: 'an Authorization: Bearer abcdefghijklmnop header',
          proposedBy: 'agent',
        },
        PolicySchema.parse({ approvers: { users: ['U0A'] } }),
        new Date(),
      );
      const view = (await proposalView(db, proposal.id))!;
      assert.equal(view.why, 'the core holds PASSWORD=[REDACTED]');
      assert.equal(view.expects, 'an Authorization: Bearer [REDACTED] header');
      assert.equal(view.text, 'grep -c icy- strings.txt', 'the text is shown exactly as approved');
    });
  });
}
