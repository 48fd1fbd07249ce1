import { redact } from '../../analyze/redact.ts';
import type { Finding } from '../../analyze/report-schema.ts';
import { findingRedactor } from '../../evidence/known-secrets.ts';
import type { Services } from '../../services.ts';
import { findingsReply, type SlackMessage } from '../../slack/blocks/incident.ts';
import { asMrkdwn, Mrkdwn, md } from '../../slack/blocks/mrkdwn.ts';
import type { ProgressPhase } from '../../slack/blocks/status.ts';
import { showProgress } from '../../slack/status-message.ts';
import type { Db } from '../../store/db.ts';
import { insertFinding } from '../../store/findings.ts';
import { markJobFailed, markJobSucceeded, startJob } from '../../store/jobs.ts';
import { jobMessageKey } from '../../store/message-keys.ts';
import { appendAudit, queueThreadMessage, type ThreadMessageBody } from '../../store/records.ts';

/**
 * What every job does around its own work, the same way: a row in `jobs` (the timeline's view of
 * it), its "started" and "done"/"failed" as its phase's line in the incident's status message
 * (edited in place, slack/status-message.ts), its findings stored and queued as one reply (or as
 * the job presents them), an audit entry. Keys are derived from the queue's job id, so a retried
 * job repeats no message. A text is mrkdwn built with `md`; a plain string is taken as outside
 * text and escaped whole (slack/blocks/mrkdwn.ts).
 */

/** What every job gets from Services; the clock its times come from (a finding's, a run's) included. */
export interface JobDeps extends Pick<Services, 'db' | 'log' | 'now'> {
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
  /**
   * Stores findings and queues them for the thread, then marks the job done, in one transaction;
   * then its phase's line says `doneText`. `present` turns the (redacted) findings into the
   * thread's messages, default one reply listing them all (none when there are none).
   */
  finish(
    findings: readonly Finding[],
    doneText: Mrkdwn | string,
    subject?: object,
    present?: (findings: readonly Finding[]) => ThreadMessageBody[],
  ): Promise<void>;
  fail(error: unknown): Promise<void>;
  /**
   * Replaces its phase's line while it runs (a partial result); `rank` orders these updates (a
   * late one never steps back), all above "started" and below the final "done"/"failed".
   */
  update(text: Mrkdwn | string, rank: number): Promise<void>;
}

/** The ranks of a job's line: started, then updates (1 + their own rank), then done or failed. */
const STARTED_RANK = 1;
const FINAL_RANK = 2 ** 40;

export async function startJobRun(
  deps: JobDeps,
  queue: string,
  queueJobId: string,
  incidentId: number,
  input: object,
  startedText: Mrkdwn | string,
  phase: ProgressPhase,
): Promise<JobRun> {
  const id = await startJob(deps.db, { incidentId, kind: queue, queueJobId, input });
  const reply = (key: string, text: Mrkdwn | string, db: Db = deps.db) =>
    queueThreadMessage(db, {
      incidentId,
      key: jobMessageKey(queueJobId, key),
      fallbackChannel: '#incidents',
      body: { type: 'text', text: asMrkdwn(text).text, blocks: [] },
    });
  const progress = (text: Mrkdwn | string, rank: number) =>
    showProgress(deps.db, incidentId, phase, asMrkdwn(text), {
      rank,
      channel: '#incidents',
      kick: deps.kick,
    });
  await progress(startedText, STARTED_RANK);
  return {
    id,
    reply,
    update: (text, rank) =>
      progress(
        text,
        STARTED_RANK + 1 + Math.min(Math.max(0, Math.floor(rank)), FINAL_RANK - STARTED_RANK - 2),
      ),
    async finish(findings, doneText, subject = {}, present = (f) => defaultPresent(f)) {
      const clean = await storeFindings(
        deps,
        { id, queue, queueJobId, incidentId },
        findings,
        present,
        subject,
      );
      // Redacted as it will show: [REDACTED] adds no markup, so it stays mrkdwn, escaped once.
      await progress(new Mrkdwn(clean(asMrkdwn(doneText).text)), FINAL_RANK);
    },
    async fail(error) {
      const message = redact((error as Error).message).text.slice(0, 500);
      await markJobFailed(deps.db, id, message);
      await progress(md`:x: ${queue} failed: ${message}`, FINAL_RANK);
    },
  };
}

/**
 * Stores the job's findings and queues them for the thread, then marks the job done, in one
 * transaction. Findings are stored redacted, as they go to Slack, and a secret found in one
 * finding is hidden in all of them. The secrets themselves are remembered beside the evidence,
 * not in the database, so the agent can still hide their bare copies (evidence/known-secrets.ts).
 * Returns the redactor, for the line that says it is done.
 */
async function storeFindings(
  deps: JobDeps,
  job: { id: number; queue: string; queueJobId: string; incidentId: number },
  findings: readonly Finding[],
  present: (findings: readonly Finding[]) => ThreadMessageBody[],
  subject: object,
): Promise<(text: string) => string> {
  const { id, queue, queueJobId, incidentId } = job;
  const scrub = await findingRedactor(
    deps.evidenceDir,
    incidentId,
    findings.map((f) => `${f.title}\n${f.detail}`),
  );
  const shown: Finding[] = [];
  await deps.db.transaction(async (tx) => {
    for (const finding of findings) {
      const title = scrub(finding.title);
      const detail = scrub(finding.detail);
      await insertFinding(tx, {
        incidentId,
        jobId: id,
        kind: queue,
        severity: finding.severity,
        title: title.text,
        body: { detail: detail.text, redactions: title.count + detail.count },
      });
      shown.push({ ...finding, title: title.text, detail: detail.text });
    }
    for (const [i, body] of present(shown).entries()) {
      await queueThreadMessage(tx, {
        incidentId,
        key: jobMessageKey(queueJobId, `findings:${i}`),
        fallbackChannel: '#incidents',
        body,
      });
    }
    await markJobSucceeded(tx, id);
    await appendAudit(tx, {
      actor: 'nightshift',
      action: 'job.finished',
      incidentId,
      subject: { job: queueJobId, queue, ...subject },
    });
  });
  return (text) => scrub(text).text;
}

export const asBody = (message: SlackMessage): ThreadMessageBody => ({
  type: 'text',
  text: message.text,
  blocks: message.blocks,
});

/** The findings as one reply, each its title and detail; none when there are none. */
function defaultPresent(findings: readonly Finding[]): ThreadMessageBody[] {
  return findings.length === 0 ? [] : [asBody(findingsReply(findings))];
}
