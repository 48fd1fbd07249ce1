import { redact } from '../../analyze/redact.ts';
import type { Finding } from '../../analyze/report-schema.ts';
import { findingRedactor } from '../../evidence/known-secrets.ts';
import type { Logger } from '../../log.ts';
import { findingReply } from '../../slack/blocks/incident.ts';
import { asMrkdwn, Mrkdwn, md } from '../../slack/blocks/mrkdwn.ts';
import type { Db } from '../../store/db.ts';
import { appendAudit, queueThreadMessage } from '../../store/records.ts';

/**
 * What every job does around its own work, the same way: a row in `jobs` (the timeline's view of
 * it), a "started" and a "done"/"failed" reply in the thread, its findings stored and queued as
 * replies, an audit entry. Keys are derived from the queue's job id, so a retried job repeats no
 * message. A reply's text is mrkdwn built with `md`; a plain string is taken as outside text and
 * escaped whole (slack/blocks/mrkdwn.ts).
 */

export interface JobDeps {
  db: Db;
  log: Logger;
  /** Asks the Slack outbox to post what was queued (absent when Slack is off). */
  kick?: () => void;
  /**
   * Where pulled evidence is kept: the secrets found in findings are remembered beside it for the
   * agent (evidence/known-secrets.ts). Unset (tests, the CLI): they are not.
   */
  evidenceDir?: string;
}

export interface JobRun {
  /** The `jobs` row. */
  id: number;
  reply(key: string, text: Mrkdwn | string, db?: Db): Promise<void>;
  /** Stores findings and queues each for the thread, then marks the job done, in one transaction. */
  finish(findings: readonly Finding[], doneText: Mrkdwn | string, subject?: object): Promise<void>;
  fail(error: unknown): Promise<void>;
}

export async function startJobRun(
  deps: JobDeps,
  queue: string,
  queueJobId: string,
  incidentId: number,
  input: object,
  startedText: Mrkdwn | string,
): Promise<JobRun> {
  const { rows } = await deps.db.executeSql<{ id: string }>(
    `INSERT INTO jobs (incident_id, kind, queue_job_id, state, input, started_at)
     VALUES ($1, $2, $3, 'running', $4, now())
     ON CONFLICT (queue_job_id) DO UPDATE SET state = 'running', started_at = now(), error = NULL
     RETURNING id`,
    [incidentId, queue, queueJobId, JSON.stringify(input)],
  );
  const id = Number(rows[0]!.id);
  const reply = (key: string, text: Mrkdwn | string, db: Db = deps.db) =>
    queueThreadMessage(db, {
      incidentId,
      key: `job:${queueJobId}:${key}`,
      fallbackChannel: '#incidents',
      body: { type: 'text', text: asMrkdwn(text).text, blocks: [] },
    });
  await reply('started', startedText);
  deps.kick?.();
  return {
    id,
    reply,
    async finish(findings, doneText, subject = {}) {
      // Findings are stored redacted, as they go to Slack, and a secret found in one finding is
      // hidden in all of them. The secrets themselves are remembered beside the evidence, not in
      // the database, so the agent can still hide their bare copies (evidence/known-secrets.ts).
      const scrub = await findingRedactor(
        deps.evidenceDir,
        incidentId,
        findings.map((f) => `${f.title}\n${f.detail}`),
      );
      const clean = (text: string) => scrub(text).text;
      await deps.db.transaction(async (tx) => {
        for (const [i, finding] of findings.entries()) {
          const title = scrub(finding.title);
          const detail = scrub(finding.detail);
          await tx.executeSql(
            'INSERT INTO findings (incident_id, job_id, kind, severity, title, body) VALUES ($1, $2, $3, $4, $5, $6)',
            [
              incidentId,
              id,
              queue,
              finding.severity,
              title.text,
              JSON.stringify({ detail: detail.text, redactions: title.count + detail.count }),
            ],
          );
          const message = findingReply({ ...finding, title: title.text, detail: detail.text });
          await queueThreadMessage(tx, {
            incidentId,
            key: `job:${queueJobId}:finding:${i}`,
            fallbackChannel: '#incidents',
            body: { type: 'text', text: message.text, blocks: message.blocks },
          });
        }
        // Redacted as it will show: [REDACTED] adds no markup, so it stays mrkdwn, escaped once.
        await reply('finished', new Mrkdwn(clean(asMrkdwn(doneText).text)), tx);
        await tx.executeSql(`UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1`, [id]);
        await appendAudit(tx, {
          actor: 'nightshift',
          action: 'job.finished',
          incidentId,
          subject: { job: queueJobId, queue, ...subject },
        });
      });
      deps.kick?.();
    },
    async fail(error) {
      const message = redact((error as Error).message).text.slice(0, 500);
      await deps.db.executeSql(
        `UPDATE jobs SET state = 'failed', finished_at = now(), error = $2 WHERE id = $1`,
        [id, message],
      );
      await reply('failed', md`:x: ${queue} failed: ${message}`);
      deps.kick?.();
    },
  };
}
