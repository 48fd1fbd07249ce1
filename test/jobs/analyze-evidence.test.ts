import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_POLICY } from '../../src/approvals/policy.ts';
import { systemClock } from '../../src/clock.ts';
import { type CodedError, ErrorCode } from '../../src/errors.ts';
import type { AnalysisChildOptions } from '../../src/evidence/analyze-child.ts';
import { recallSecrets } from '../../src/evidence/known-secrets.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { crashSignature } from '../../src/incidents/signature.ts';
import { QUEUES } from '../../src/jobs/queues.ts';
import { analyzeEvidence } from '../../src/jobs/workers/analyze-evidence.ts';
import { registerWorkers } from '../../src/jobs/workers/index.ts';
import { createLogger } from '../../src/log.ts';
import { makeCCore } from '../helpers/cores.ts';
import { migratedDb, testDatabases } from '../helpers/db.ts';
import { testBoss } from '../helpers/queue.ts';
import { tempDir } from '../helpers/test-end.ts';
import { until } from '../helpers/wait.ts';

const examples = new URL('../../examples/', import.meta.url).pathname;

/** The pid of this process's analysis child (analyze-child-main), read from /proc. */
function analysisChild(): number | undefined {
  for (const task of readdirSync('/proc/self/task')) {
    let children: string;
    try {
      children = readFileSync(`/proc/self/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const pid of children.trim().split(/\s+/).filter(Boolean)) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('analyze-child-main')) return Number(pid);
      } catch {
        // Gone meanwhile.
      }
    }
  }
  return undefined;
}
const PASSWORD = 'hunter2';
const DSN = `postgres://u:${PASSWORD}@db/x`;
const BOT_TOKEN = 'xoxb-1234567890-abcdefghijklmnop';

for (const database of testDatabases()) {
  describe(`the analysis job on pg-boss on ${database.name}`, () => {
    it('analyses the evidence, stores the findings and queues them for the thread', async (t) => {
      const db = await migratedDb(t, database);
      const log = createLogger({ level: 'silent' });
      const boss = await testBoss(t, db, log);
      const { rows } = await db.executeSql<{ id: string }>(
        `INSERT INTO incidents (group_key, host, problem, title, opened_by) VALUES ('web-1:disk', 'web-1', 'disk', 'Disk', 'test') RETURNING id`,
      );
      const incidentId = Number(rows[0]!.id);
      let kicked = 0;
      await registerWorkers(boss, {
        now: systemClock,
        db,
        log,
        kick: () => kicked++,
        policy: DEFAULT_POLICY,
        channel: '#incidents',
        evidenceDir: '/nonexistent',
      });
      const jobId = await boss.send(QUEUES.analyzeEvidence.name, { incidentId, paths: [examples] });
      assert.ok(jobId);
      const state = await until('the job to finish', async () => {
        const r = await db.executeSql<{ state: string; error: string | null }>(
          'SELECT state, error FROM jobs WHERE queue_job_id = $1',
          [jobId],
        );
        return r.rows[0] && r.rows[0].state !== 'running' ? r.rows[0] : undefined;
      });
      assert.deepEqual(state, { state: 'succeeded', error: null });
      const findings = await db.executeSql<{ severity: string; title: string }>(
        'SELECT severity, title FROM findings WHERE incident_id = $1 ORDER BY id',
        [incidentId],
      );
      assert.equal(findings.rows[0]!.severity, 'critical');
      assert.match(
        findings.rows[0]!.title,
        /^Likely endless stream in 3 of 5 dumps: http:\/\/127\.0\.0\.1:\d+\/live\/radio\.mp3$/,
      );
      // Without ANTHROPIC_API_KEY the thread is told once that the agent is off.
      await until('the agent-off notice', async () => {
        const r = await db.executeSql('SELECT 1 FROM thread_messages WHERE dedup_key = $1', [
          `agent:${incidentId}:off`,
        ]);
        return r.rows.length > 0;
      });
      const replies = await db.executeSql<{ n: number }>(
        `SELECT count(*)::int AS n FROM thread_messages WHERE incident_id = $1 AND role = 'reply'`,
        [incidentId],
      );
      assert.equal(replies.rows[0]!.n, 4, 'the status message, the answer, its file, the agent is off');
      const done = await db.executeSql<{ body: unknown }>(
        'SELECT body FROM thread_messages WHERE dedup_key = $1',
        [`status:${incidentId}`],
      );
      const raw = done.rows[0]!.body;
      const body = (typeof raw === 'string' ? JSON.parse(raw) : raw) as { text: string };
      assert.match(body.text, /Analysis done: 5 dumps, \d+ findings/);
      // The analysis's line was edited with the headline so far as files were done, then done.
      const edits = await db.executeSql<{ version: number }>(
        'SELECT version::int AS version FROM thread_messages WHERE dedup_key = $1',
        [`status:${incidentId}`],
      );
      assert.ok(edits.rows[0]!.version >= 3, `edited ${edits.rows[0]!.version} times`);
      // Measured in the analysis's own process, apart from the bot's (issue 14: 256 MiB a dump).
      const result = await db.executeSql<{ result: unknown }>(
        'SELECT result FROM jobs WHERE queue_job_id = $1',
        [jobId],
      );
      const stored = result.rows[0]!.result;
      const { peakRssBytes } = (typeof stored === 'string' ? JSON.parse(stored) : stored) as {
        peakRssBytes: number;
      };
      assert.ok(peakRssBytes > 16 * 2 ** 20 && peakRssBytes < 256 * 2 ** 20, `peak RSS ${peakRssBytes}`);
      // The crash signature its dumps share most, for matching incidents across hosts: the
      // program, the signal that killed it and what it was doing, from the real cores.
      const signature = crashSignature(typeof stored === 'string' ? JSON.parse(stored) : stored);
      assert.ok(signature?.executable && signature.signal?.startsWith('SIG'), JSON.stringify(signature));
      // The answer: one message with the stream's URL as it is, and the rest as a file.
      const answer = await db.executeSql<{ body: unknown }>(
        'SELECT body FROM thread_messages WHERE dedup_key = $1',
        [`job:${jobId}:findings:0`],
      );
      const shown = JSON.stringify(answer.rows[0]!.body);
      assert.match(
        shown,
        /Likely endless stream in 3 of 5 dumps:\*\\nhttp:\/\/127\.0\.0\.1:\d+\/live\/radio\.mp3/,
      );
      assert.match(shown, /Top correlations/);
      assert.match(shown, /Look at next/);
      const file = await db.executeSql<{ body: { type: string; content: string } }>(
        'SELECT body FROM thread_messages WHERE dedup_key = $1',
        [`job:${jobId}:findings:1`],
      );
      const fileBody = file.rows[0]!.body;
      const content = (typeof fileBody === 'string' ? JSON.parse(fileBody) : fileBody) as {
        type: string;
        content: string;
      };
      assert.equal(content.type, 'file');
      assert.match(content.content, /## Correlations/);
      assert.equal((content.content.match(/^- \*\*/gm) ?? []).length, findings.rows.length);
      // Started, each headline so far, done, the root marked stale for its headline, the agent is off.
      assert.ok(kicked > 4, `kicked ${kicked} times`);
    });

    it('stores no secret planted in the evidence in its finding rows', async (t) => {
      const db = await migratedDb(t, database);
      const log = createLogger({ level: 'silent' });
      const work = tempDir(t, 'nightshift-analyze-secrets-');
      const { incident } = await openIncidentByHand(db, {
        host: 'web-1',
        note: 'crash',
        user: 'U0X',
        channel: 'C1',
      });
      // A real core whose memory holds a database URL with its password and a Slack bot token.
      const core = await makeCCore(join(work, 'cores'), 'abort', { args: [DSN, BOT_TOKEN] });
      const report = await analyzeEvidence(
        { now: systemClock, db, log, evidenceDir: join(work, 'evidence') },
        'job-secrets',
        {
          incidentId: incident.id,
          paths: [core.path],
        },
      );
      assert.ok(report.totals.redactions > 0, 'the analysis found and hid them');
      // The values are kept beside the evidence, for the agent to hide their bare copies.
      const kept = await recallSecrets(join(work, 'evidence'), incident.id);
      assert.ok(kept.includes(PASSWORD), JSON.stringify(kept));
      assert.ok(!JSON.stringify(report).includes(PASSWORD), 'the report holds none');
      const { rows } = await db.executeSql<{ row: unknown }>(
        'SELECT to_jsonb(f) AS row FROM findings f WHERE incident_id = $1 ORDER BY id',
        [incident.id],
      );
      assert.ok(rows.length > 0);
      for (const { row } of rows) {
        const text = typeof row === 'string' ? row : JSON.stringify(row);
        for (const secret of [PASSWORD, BOT_TOKEN, 'xoxb-'])
          assert.ok(!text.includes(secret), `${secret} in ${text}`);
      }
    });

    it('runs in a child process: one that crashes or runs out of memory fails the job, not the bot', async (t) => {
      const db = await migratedDb(t, database);
      const log = createLogger({ level: 'silent' });
      const { incident } = await openIncidentByHand(db, {
        host: 'web-2',
        note: 'crash',
        user: 'U0X',
        channel: 'C1',
      });
      const failed = async (jobId: string, analysis: AnalysisChildOptions, reason: RegExp) => {
        await assert.rejects(
          analyzeEvidence({ now: systemClock, db, log, analysis }, jobId, {
            incidentId: incident.id,
            paths: [examples],
          }),
          (error: CodedError) => error.code === ErrorCode.AnalysisFailed && reason.test(error.message),
        );
        const { rows } = await db.executeSql<{ state: string; error: string }>(
          'SELECT state, error FROM jobs WHERE queue_job_id = $1',
          [jobId],
        );
        assert.equal(rows[0]!.state, 'failed');
        assert.match(rows[0]!.error, reason);
        // The thread is told on the incident's status message, the job's phase line.
        const status = await db.executeSql<{ body: unknown }>(
          'SELECT body FROM thread_messages WHERE dedup_key = $1',
          [`status:${incident.id}`],
        );
        const raw = status.rows[0]?.body;
        const shown = (typeof raw === 'string' ? JSON.parse(raw) : raw) as { text: string } | undefined;
        assert.match(shown?.text ?? '', new RegExp(`failed: .*${reason.source}`), 'the thread is told');
      };
      // V8 gives up on an 8 MiB heap (a real out-of-memory abort); on 4 MiB it crashed with
      // SIGSEGV here; an hour's limit cut to 50 ms kills it. This process stays up through all.
      await failed('job-oom', { maxOldSpaceMiB: 8 }, /ran out of memory/);
      await failed('job-timeout', { timeoutMs: 50 }, /took longer than 50 ms/);
      // Killed from outside as soon as it is there, as the kernel's OOM killer would kill it.
      let killed = false;
      const killer = setInterval(() => {
        const pid = analysisChild();
        if (pid === undefined || killed) return;
        killed = true;
        process.kill(pid, 'SIGKILL');
      }, 5);
      try {
        await failed('job-killed', {}, /the analysis process was killed by SIGKILL/);
      } finally {
        clearInterval(killer);
      }
      const report = await analyzeEvidence({ now: systemClock, db, log }, 'job-after', {
        incidentId: incident.id,
        paths: [examples],
      });
      assert.equal(report.dumps.length, 5, 'the next analysis runs');
    });

    it('refuses a payload that does not fit the queue schema', async () => {
      const db = await database.open();
      const log = createLogger({ level: 'silent' });
      try {
        await assert.rejects(
          analyzeEvidence({ now: systemClock, db, log }, 'x', { incidentId: -1, paths: [] }),
          /incidentId|paths/,
        );
      } finally {
        await db.close();
      }
    });
  });
}
