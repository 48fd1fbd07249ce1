import { redact } from '../../analyze/redact.ts';
import type { Finding, Report } from '../../analyze/report-schema.ts';
import { type AnalysisChildOptions, analyzeInChild } from '../../evidence/analyze-child.ts';
import { rememberSecrets } from '../../evidence/known-secrets.ts';
import { analysisAnswer, analysisMarkdown } from '../../slack/blocks/analysis.ts';
import { type Mrkdwn, md } from '../../slack/blocks/mrkdwn.ts';
import { markRelatedStale } from '../../slack/fleet.ts';
import { markRootStale } from '../../store/incidents.ts';
import { type AnalysisResult, setJobResult } from '../../store/jobs.ts';
import type { ThreadMessageBody } from '../../store/records.ts';
import { QUEUES } from '../queues.ts';
import { asBody, type JobDeps, type JobRun, startJobRun } from './job-run.ts';

/**
 * The analysis job: runs `nightshift analyze` on evidence already on the bot host, in a child
 * process of its own (evidence/analyze-child.ts: the analyzer keeps V8's optimizing compiler, which
 * the bot's process turns off for PGlite; its memory is bounded and measured apart; a crash, an
 * out-of-memory or a hang fails the job, not the bot), stores the findings (redacted again by
 * job-run.ts before they are stored) and queues each as a reply in the incident's thread.
 */
export type { JobDeps };

export interface AnalysisDeps extends JobDeps {
  /** The child process's limits (time, heap) and threads; the defaults of analyze-child.ts. */
  analysis?: AnalysisChildOptions;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export async function analyzeEvidence(deps: AnalysisDeps, jobId: string, raw: unknown): Promise<Report> {
  const payload = QUEUES.analyzeEvidence.payload.parse(raw);
  const what = payload.follow
    ? `${plural(payload.paths.length, 'file')} as they are pulled`
    : plural(payload.paths.length, 'evidence path');
  const started = md`:hourglass_flowing_sand: Analysing ${what} (job ${jobId.slice(0, 8)})`;
  const run = await startJobRun(
    deps,
    QUEUES.analyzeEvidence.name,
    jobId,
    payload.incidentId,
    payload,
    started,
    'analysis',
  );
  const line = lineEditor(deps, run, started, jobId);
  try {
    const { report, secrets, peakRssBytes } = await analyzeInChild(payload.paths, {
      ...deps.analysis,
      ...(payload.follow ? { follow: true } : {}),
      onPartial: ({ headline, dumps, filesDone, filesTotal }) => {
        if (!headline) return;
        // Every file in: the headline holds (its counts may still grow as they are made exact).
        const where =
          filesDone === filesTotal
            ? `all ${filesTotal} files analysed, making the counts exact`
            : `${filesDone} of ${filesTotal} files analysed`;
        line.edit(`: so far, ${headline} (${dumps} dumps, ${where})`, filesDone);
      },
    });
    // The final counts (the ones so far may be lower bounds) are the answer's, posted by finish.
    await line.settled();
    deps.log.info(
      {
        job: jobId,
        dumps: report.dumps.length,
        bytes: report.totals.bytes,
        peakRssMiB: Math.round(peakRssBytes / 2 ** 20),
      },
      'analysis done',
    );
    // Kept beside the evidence they came from, for the agent and for the findings' own redaction.
    if (deps.evidenceDir) await rememberSecrets(deps.evidenceDir, payload.incidentId, secrets);
    const unreadable = report.errors.length > 0 ? `, ${plural(report.errors.length, 'file')} unreadable` : '';
    await run.finish(
      report.findings,
      md`:white_check_mark: Analysis done: ${plural(report.dumps.length, 'dump')}, ${plural(report.findings.length, 'finding')}${unreadable}`,
      { dumps: report.dumps.length },
      (findings) => presentAnalysis(payload.incidentId, report, findings),
    );
    // The ranked correlations (already redacted by the analyzer), for the agent's list_findings.
    await setJobResult(deps.db, run.id, analysisResult(report, peakRssBytes));
    // Incidents with the same crash name this one on their roots: they are re-rendered too.
    await markRelatedStale(deps.db, payload.incidentId);
    // The root shows the headline now (its correlations stored): marked stale, the outbox's next drain updates it.
    await markRootStale(deps.db, payload.incidentId);
    deps.kick?.();
    return report;
  } catch (error) {
    await line.settled();
    await run.fail(error);
    throw error;
  }
}

/**
 * The analysis's line in the status message shows the headline as soon as it holds, edited in
 * place as files are done (ranked by files done, so a late edit never steps back); the answer
 * and the final line follow when the whole set is in. Edits are made one after another.
 */
function lineEditor(deps: AnalysisDeps, run: JobRun, started: Mrkdwn, jobId: string) {
  let edits = Promise.resolve();
  return {
    edit(line: string, rank: number) {
      edits = edits.then(() =>
        run
          .update(md`${started}${redact(line).text}`, rank)
          .catch((error: unknown) =>
            deps.log.warn({ err: error, job: jobId }, 'could not edit the analysis line'),
          ),
      );
    },
    settled: () => edits,
  };
}

/** The thread's messages of an analysis: one message to read on a phone, and the rest as a file beside it. */
function presentAnalysis(
  incidentId: number,
  report: Report,
  findings: readonly Finding[],
): ThreadMessageBody[] {
  const answer = {
    incidentId,
    dumps: report.dumps.length,
    unreadable: report.errors.length,
    findings,
    correlations: report.correlations,
    nextSteps: report.nextSteps,
  };
  return [
    asBody(analysisAnswer(answer)),
    {
      type: 'file',
      content: analysisMarkdown(answer),
      filename: `incident-${incidentId}-analysis.md`,
      title: `Analysis of ${plural(report.dumps.length, 'dump')} (#${incidentId})`,
      comment: 'All findings, correlations and next steps of the analysis.',
    },
  ];
}

/** What the analysis job keeps as its result. */
function analysisResult(report: Report, peakRssBytes: number): AnalysisResult {
  return {
    // Read by /metrics: the analysis throughput histogram (bytes over the job's duration).
    bytes: report.totals.bytes,
    // The analysis process's peak RSS (issue 14's bound: 256 MiB for one dump, 512 for eight).
    peakRssBytes,
    correlations: report.correlations
      .slice(0, 50)
      .map(({ value, kind, dumps, total, stream, why }) => ({ value, kind, dumps, total, stream, why })),
    // The crash signatures, for matching incidents across hosts and over time (incidents/signature.ts).
    signatures: report.signatures
      .slice(0, 20)
      .map(({ executable, signal, topEvidence, count }) => ({ executable, signal, topEvidence, count })),
  };
}
