import { availableParallelism } from 'node:os';
import { redact } from '../../analyze/redact.ts';
import type { Report } from '../../analyze/report-schema.ts';
import { analyzeFiles } from '../../evidence/analyze-files.ts';
import type { Logger } from '../../log.ts';
import { findingReply } from '../../slack/blocks/incident.ts';
import type { Db } from '../../store/db.ts';
import { appendAudit, queueThreadMessage } from '../../store/records.ts';
import { type AnalyzeEvidencePayload, QUEUES } from '../queues.ts';

/**
 * The analysis job: runs `nightshift analyze` on evidence already on the bot host (on worker
 * threads, so the bot's event loop keeps answering Slack), stores the findings (already redacted
 * by the analyzer) and queues each as a reply in the incident's thread.
 */

export interface JobDeps {
  db: Db;
  log: Logger;
  /** Asks the Slack outbox to post what was queued (absent when Slack is off). */
  kick?: () => void;
}

/** A plain thread reply, queued once per key (a retried job does not repeat it). */
function queueReply(db: Db, incidentId: number, key: string, message: { text: string }): Promise<void> {
  return queueThreadMessage(db, {
    incidentId,
    key,
    fallbackChannel: '#incidents',
    body: { type: 'text', text: message.text, blocks: [] },
  });
}

async function recordJob(
  db: Db,
  jobId: string,
  incidentId: number,
  input: object,
): Promise<number | undefined> {
  const { rows } = await db.executeSql<{ id: string }>(
    `INSERT INTO jobs (incident_id, kind, queue_job_id, state, input, started_at)
     VALUES ($1, $2, $3, 'running', $4, now())
     ON CONFLICT (queue_job_id) DO UPDATE SET state = 'running', started_at = now(), error = NULL
     RETURNING id`,
    [incidentId, QUEUES.analyzeEvidence.name, jobId, JSON.stringify(input)],
  );
  return rows[0] ? Number(rows[0].id) : undefined;
}

export async function analyzeEvidence(deps: JobDeps, jobId: string, raw: unknown): Promise<Report> {
  const payload: AnalyzeEvidencePayload = QUEUES.analyzeEvidence.payload.parse(raw);
  const job = await recordJob(deps.db, jobId, payload.incidentId, payload);
  try {
    await queueReply(deps.db, payload.incidentId, `job:${jobId}:started`, {
      text: `:hourglass_flowing_sand: Analysing ${payload.paths.length} evidence path${payload.paths.length === 1 ? '' : 's'} (job ${jobId.slice(0, 8)})`,
    });
    deps.kick?.();
    // Always on worker threads, however small the input: the bot's event loop answers Slack.
    const report = await analyzeFiles(payload.paths, { workers: Math.max(1, availableParallelism()) });
    await deps.db.transaction(async (tx) => {
      for (const [i, finding] of report.findings.entries()) {
        await tx.executeSql(
          `INSERT INTO findings (incident_id, job_id, kind, severity, title, body) VALUES ($1, $2, 'analysis', $3, $4, $5)`,
          [
            payload.incidentId,
            job,
            finding.severity,
            finding.title,
            JSON.stringify({ detail: finding.detail }),
          ],
        );
        const message = findingReply(finding);
        await queueThreadMessage(tx, {
          incidentId: payload.incidentId,
          key: `job:${jobId}:finding:${i}`,
          fallbackChannel: '#incidents',
          body: { type: 'text', text: message.text, blocks: message.blocks },
        });
      }
      await queueReply(tx, payload.incidentId, `job:${jobId}:finished`, {
        text: `:white_check_mark: Analysis done: ${report.dumps.length} dump${report.dumps.length === 1 ? '' : 's'}, ${report.findings.length} finding${report.findings.length === 1 ? '' : 's'}${report.errors.length > 0 ? `, ${report.errors.length} file${report.errors.length === 1 ? '' : 's'} unreadable` : ''}`,
      });
      await tx.executeSql(`UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1`, [job]);
      await appendAudit(tx, {
        actor: 'nightshift',
        action: 'job.finished',
        incidentId: payload.incidentId,
        subject: { job: jobId, queue: QUEUES.analyzeEvidence.name, dumps: report.dumps.length },
      });
    });
    deps.kick?.();
    return report;
  } catch (error) {
    await deps.db.executeSql(
      `UPDATE jobs SET state = 'failed', finished_at = now(), error = $2 WHERE id = $1`,
      [job, (error as Error).message],
    );
    await queueReply(deps.db, payload.incidentId, `job:${jobId}:failed`, {
      text: `:x: Analysis failed: ${redact((error as Error).message).text.slice(0, 500)}`,
    });
    deps.kick?.();
    throw error;
  }
}
