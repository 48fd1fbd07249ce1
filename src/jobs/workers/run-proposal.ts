import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { KnownSecrets, redact } from '../../analyze/redact.ts';
import type { Policy } from '../../approvals/policy.ts';
import type { ProposalText } from '../../approvals/proposal.ts';
import {
  beatRun,
  finishRun,
  getProposal,
  type Proposal,
  RUN_HEARTBEAT,
  type RunEnd,
  type RunRecord,
  startRun,
} from '../../approvals/service.ts';
import { type FreeItem, freeText, HASH_CHEAP_BYTES, parseFreeText } from '../../collect/free-plan.ts';
import {
  type PullOptions,
  type PullResult,
  type PullSource,
  pullFile,
  sentAsStored,
} from '../../collect/pull.ts';
import { localName, parsePullText, progressLine, pullText } from '../../collect/pull-plan.ts';
import type { RemoteHost } from '../../collect/transport.ts';
import { findHost } from '../../config/hosts.ts';
import type { SqlDatabase } from '../../config/sql-databases.ts';
import { asCodedError, CodedError, ErrorCode } from '../../errors.ts';
import { failedMarker } from '../../evidence/follow.ts';
import { formatBytes, ONE_DECIMAL } from '../../format-bytes.ts';
import type { CgroupReport } from '../../runners/cgroup.ts';
import {
  runInSandbox,
  SANDBOX_DEFAULTS,
  type SandboxLimits,
  type SandboxOptions,
} from '../../runners/evidence-sandbox.ts';
import { type SandboxUser, shareEvidence } from '../../runners/sandbox-user.ts';
import { renderSqlResult, runReadOnlySql, type SqlRunOptions } from '../../runners/sql.ts';
import { checkReadOnlySql } from '../../runners/sql-check.ts';
import type { Services } from '../../services.ts';
import { asMrkdwn, joinMrkdwn, type Mrkdwn, md } from '../../slack/blocks/mrkdwn.ts';
import { refreshProposalMessage } from '../../slack/proposal-messages.ts';
import { showProgress } from '../../slack/status-message.ts';
import { completeTransfer, failTransfer, startTransfer } from '../../store/evidence-artifacts.ts';
import { markRootStale } from '../../store/incidents.ts';
import { runMessageKey } from '../../store/message-keys.ts';
import { appendAudit, queueThreadMessage } from '../../store/records.ts';
import { QUEUES } from '../queues.ts';
import { freeFiles, proposeFreeing } from './free-disk.ts';
import type { JobDeps } from './job-run.ts';

/**
 * The runner of approved proposals. It re-reads the proposal, rebuilds the exact text it is
 * about to execute from what it parsed, and claims the one run with that text's hash (the
 * database refuses the claim without the approvals of that hash). A retried job, a second
 * worker or a crash after the claim never runs it again.
 *
 * Every kind of run (a pull, a script, a query) goes through one path, claimAndRun: claim, run
 * the kind's body, and always record the end; a body that throws (the store, the disk, a bug)
 * ends the run failed with the error's code and message, never leaves it running. While the
 * body runs its worker writes the run's heartbeat; a worker that dies stops it, and the sweeper
 * fails the run (failStaleRuns).
 */

/**
 * The runner's view of Services (Slack's Web API when Slack is on, where messages are edited in
 * place too; the hosts and their SSH connections when collection is on) and its own settings.
 */
export interface RunnerDeps
  extends Omit<JobDeps, 'evidenceDir'>,
    Pick<Services, 'slack' | 'hosts' | 'ssh' | 'evidenceDir' | 'channel'> {
  /** Queues a job (the analysis of what was pulled). */
  send(queue: string, payload: object): Promise<unknown>;
  /** The databases SQL proposals may name (NIGHTSHIFT_SQL_DATABASES). */
  sqlDatabases?: readonly SqlDatabase[] | undefined;
  /** Host paths evidence scripts must not see (the bot's data directory); the evidence root and SSH keys are added. */
  sandboxHide?: readonly string[] | undefined;
  /** The user evidence scripts run as (NIGHTSHIFT_SANDBOX_USER); unset, the bot's own. */
  sandboxUser?: SandboxUser | undefined;
  /**
   * Bounds on all of an evidence script's processes together and where its cgroup is made
   * (NIGHTSHIFT_SANDBOX_MEMORY_MIB, _PROCESSES, _CGROUP); `limits.sandbox` overrides them.
   */
  sandboxLimits?: SandboxLimits | undefined;
  /** Limits other than the defaults (tests). */
  limits?: RunnerLimits | undefined;
  /** How often a run's heartbeat is written, in milliseconds; default RUN_HEARTBEAT.everyMs (15,000). */
  heartbeatMs?: number | undefined;
  /** The approval policy: after a pull, freeing the disk and the guard are proposed under it. */
  policy?: Policy | undefined;
}

export interface RunnerLimits {
  sandbox?: Pick<
    SandboxOptions,
    | 'timeoutMs'
    | 'memoryBytes'
    | 'fileBytes'
    | 'maxOutputBytes'
    | 'totalMemoryBytes'
    | 'maxProcesses'
    | 'cgroup'
  >;
  sql?: Pick<SqlRunOptions, 'timeoutMs' | 'maxRows'>;
  /** Host scripts: wall time in milliseconds (default 60,000) and output in bytes (default 1 MiB). */
  host?: { timeoutMs?: number; maxOutputBytes?: number };
}

export const HOST_SCRIPT_DEFAULTS = { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 };

export async function runProposalJob(deps: RunnerDeps, raw: unknown): Promise<void> {
  const { proposalId } = QUEUES.runProposal.payload.parse(raw);
  const proposal = await getProposal(deps.db, proposalId);
  if (!proposal) throw new CodedError(ErrorCode.NotFound, `there is no proposal ${proposalId}`);
  if (proposal.kind === 'pull') {
    const sources = parsePullText(proposal.text);
    const about: ProposalText = { kind: 'pull', target: proposal.target, text: pullText(sources) };
    return claimAndRun(deps, proposal, about, (run) => runPull(deps, proposal, sources, run));
  }
  if (proposal.kind === 'free') {
    const items = parseFreeText(proposal.text);
    const about: ProposalText = { kind: 'free', target: proposal.target, text: freeText(items) };
    return claimAndRun(deps, proposal, about, (run) => runFree(deps, proposal, items, run));
  }
  if (proposal.kind === 'script' || proposal.kind === 'sql') {
    const about: ProposalText = { kind: proposal.kind, target: proposal.target, text: proposal.text };
    return claimAndRun(deps, proposal, about, (run) => runApproved(deps, proposal, about, run));
  }
  throw new CodedError(
    ErrorCode.NotApproved,
    `proposal ${proposalId}: no runner for ${proposal.kind as string} here; nothing ran`,
  );
}

const now = (deps: RunnerDeps) => deps.now();

/** What a run's body hands back when it ends by itself; everything in it is already redacted. */
interface RunReport {
  end: RunEnd;
  /** The reply in the thread (`run:<id>:result`). */
  reply: string;
  /** The whole output as a file, when it is long or a query's result (`run:<id>:file`). */
  file?: { content: string; filename: string; title: string; comment: string };
  /** The line under the proposal's message; none: its state says it. */
  summary?: string;
  /** Added to the run.result_posted audit entry. */
  posted?: object;
  /** After the end is recorded and posted (a pull's analysis of the files that came in). */
  afterwards?: () => Promise<void>;
}

/**
 * The one path of every run: claims it (startRun; nothing when it already ran or is running),
 * writes its heartbeat while `body` runs, and records its end whatever happened: the body's
 * report, or failed with the code and (redacted) message of what it threw. Then its reply is
 * queued, and its proposal's message shows the end. Only a store that fails the end itself
 * leaves the run running; its heartbeat has stopped, so the sweeper fails it.
 */
async function claimAndRun(
  deps: RunnerDeps,
  proposal: Proposal,
  about: ProposalText,
  body: (run: RunRecord) => Promise<RunReport>,
): Promise<void> {
  const run = await startRun(deps.db, proposal.id, about, now(deps));
  if (!run) {
    deps.log.info({ proposal: proposal.id }, 'proposal already ran; not running it again');
    return;
  }
  // It beats until its end is recorded: a slow store at the end does not pass for a dead worker.
  const stopBeating = heartbeat(deps, run.id);
  const started = performance.now();
  try {
    let report: RunReport;
    try {
      await refreshProposalMessage(deps.db, deps.slack, proposal.id, now(deps), undefined, deps.log);
      deps.kick?.();
      report = await body(run);
    } catch (error) {
      report = failedReport(deps, proposal, about, run.id, error, Math.round(performance.now() - started));
    }
    await recordEnd(deps, proposal, run.id, report);
  } finally {
    stopBeating();
  }
}

/** Writes the run's heartbeat every `deps.heartbeatMs` until the returned function is called. */
function heartbeat(deps: RunnerDeps, runId: number): () => void {
  const timer = setInterval(() => {
    beatRun(deps.db, runId, now(deps)).catch((error: unknown) =>
      deps.log.warn({ err: error, run: runId }, 'could not write the heartbeat of a run'),
    );
  }, deps.heartbeatMs ?? RUN_HEARTBEAT.everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** A body that threw: the run failed, with the error's code and its redacted message. */
function failedReport(
  deps: RunnerDeps,
  proposal: Proposal,
  about: ProposalText,
  runId: number,
  error: unknown,
  durationMs: number,
): RunReport {
  const message = clean(error instanceof Error ? error.message : String(error)).slice(0, 1000);
  const code = error instanceof CodedError ? error.code : ErrorCode.Internal;
  if (code === ErrorCode.Internal)
    deps.log.error({ err: error, proposal: proposal.id, run: runId }, 'a run failed on an error of its own');
  // A refused sandbox (no bwrap, no cgroup to bound it) says itself that nothing ran.
  const status = code === ErrorCode.SandboxUnavailable ? message : `did not run to the end: ${message}`;
  return {
    end: { ok: false, exitCode: null, outputBytes: 0, result: { code, durationMs }, error: message },
    // The error's text is outside text: escaped.
    reply: clean(md`:x: ${where(about)} (proposal #${proposal.id}): ${status}`.text),
    summary: `:x: ${status.split('\n')[0]}`,
  };
}

/**
 * Records the run's end, then posts its reply (and file) and edits its proposal's message, which
 * is edited even when queueing the reply failed. A run the sweeper failed meanwhile (its heartbeat
 * stopped while it still ran) keeps that end; what it did is posted anyway, as a late result.
 */
async function recordEnd(deps: RunnerDeps, proposal: Proposal, runId: number, report: RunReport) {
  const recorded = await finishRun(deps.db, proposal, runId, report.end);
  if (!recorded)
    deps.log.warn(
      { proposal: proposal.id, run: runId },
      'the run had been failed for its stopped heartbeat; its result is posted as a late one',
    );
  try {
    await queueThreadMessage(deps.db, {
      incidentId: proposal.incidentId,
      key: runMessageKey(runId, recorded ? 'result' : 'late'),
      fallbackChannel: deps.channel,
      body: {
        type: 'text',
        text: recorded
          ? report.reply
          : `${report.reply}\n(This came after the run was recorded as failed: its heartbeat had stopped.)`,
        blocks: [],
      },
    });
    if (report.file) {
      await queueThreadMessage(deps.db, {
        incidentId: proposal.incidentId,
        key: runMessageKey(runId, 'file'),
        fallbackChannel: deps.channel,
        body: { type: 'file', ...report.file },
      });
    }
    await appendAudit(deps.db, {
      actor: 'nightshift',
      action: 'run.result_posted',
      incidentId: proposal.incidentId,
      subject: { proposal: proposal.id, run: runId, bytes: report.reply.length, ...report.posted },
    });
  } finally {
    // A late result leaves the message as the sweeper left it.
    const summary = recorded ? report.summary : undefined;
    await refreshProposalMessage(deps.db, deps.slack, proposal.id, now(deps), summary, deps.log);
    deps.kick?.();
  }
  await report.afterwards?.();
}

async function runPull(
  deps: RunnerDeps,
  proposal: Proposal,
  sources: PullSource[],
  run: RunRecord,
): Promise<RunReport> {
  const host = deps.hosts && findHost(deps.hosts, proposal.target);
  if (!host || !deps.ssh)
    throw new CodedError(
      ErrorCode.HostUnknown,
      `${proposal.target} is not in the hosts file, so nothing was pulled`,
    );
  const remote = deps.ssh.host(host.name);
  const dir = join(deps.evidenceDir, `incident-${proposal.incidentId}`, `run-${run.id}`);
  await mkdir(dir, { recursive: true });
  // The pull's progress is a line of the incident's status message, edited in place.
  const progress: ProgressLine = (line, rank) =>
    showProgress(deps.db, proposal.incidentId, 'pull', line, {
      rank,
      slack: deps.slack,
      log: deps.log,
      channel: deps.channel,
      kick: deps.kick,
    });
  await progress(md`:arrow_down: Pulling ${sources.length} file(s) from ${host.name}…`, 0);
  const meter = pullMeter(deps, progress, host.name, sources.length);
  // The collection recorded each core it found (size included) as a pending artifact.
  const artifacts = new Map<PullSource, { id: number; sizeBytes: number }>();
  for (const source of sources) {
    const place = { incidentId: proposal.incidentId, host: host.name, container: source.container ?? null };
    const artifact = await startTransfer(deps.db, { ...place, path: source.path }, run.id);
    artifacts.set(source, artifact);
    meter.expectedBytes += artifact.sizeBytes;
  }
  // Where the host has zstd, its stream is kept as it comes (`<name>.zst`): decoding it here too
  // would cost more CPU than the rest of the pull, next to an analysis that decodes it anyway.
  const zstd = await hostHasZstd(remote);
  const place = (source: PullSource) =>
    join(dir, `${localName(source)}${zstd && !sentAsStored(source) ? '.zst' : ''}`);

  // The analysis starts now, in its own job and process, and reads each file as it lands
  // (evidence/follow.ts): the correlation is ready when the last byte is in, not a whole second
  // read later. A file whose pull fails gets a marker that tells the analysis so.
  await deps.send(QUEUES.analyzeEvidence.name, {
    incidentId: proposal.incidentId,
    paths: sources.map(place),
    follow: true,
  });
  // In the order they end, as the reply lists them.
  const results: PulledFile[] = [];
  await Promise.all(
    sources.map(async (source) => {
      const artifact = artifacts.get(source)!;
      const options: PullOptions = zstd
        ? {
            compression: 'zstd',
            keep: 'compressed',
            // Decoded here too only when the free run needs what that tells: a host file's size
            // (a container's is in its tar's header), the content's sha256 for a file the host
            // checks by hash before deleting it, or a size the collection did not know.
            hashContent:
              !source.container || artifact.sizeBytes === 0 || artifact.sizeBytes <= HASH_CHEAP_BYTES,
          }
        : {};
      results.push(await pullOne(deps, remote, source, place(source), artifact, meter, options));
    }),
  );
  await meter.draw(true);
  return pullReport(
    deps,
    proposal,
    { host: host.name, remote, files: sources.length },
    results,
    meter,
    progress,
  );
}

/** Whether the host has zstd (`command -v`); a failed probe counts as no: gzip then, as before. */
async function hostHasZstd(remote: RemoteHost): Promise<boolean> {
  const probe = await remote
    .exec({ command: 'command -v zstd', timeoutMs: 15_000, maxOutputBytes: 4096 })
    .catch(() => undefined);
  return probe?.exitCode === 0 && probe.stdout.trim().length > 0;
}

type ProgressLine = (line: Mrkdwn, rank: number) => Promise<unknown>;

interface PulledFile {
  source: PullSource;
  /** Its size as the collection saw it on the host (0: not known). */
  hostBytes: number;
  result?: PullResult;
  error?: string;
}

/** The pull's running count (files, bytes, rate), drawn as its progress line at most every 2 s. */
interface PullMeter {
  started: number;
  expectedBytes: number;
  /** Bytes in so far, per file. */
  done: Map<PullSource, number>;
  fileDone(): void;
  draw(force?: boolean): Promise<void>;
  /** A rank above every draw so far. */
  nextRank(): number;
}

function pullMeter(deps: RunnerDeps, progress: ProgressLine, host: string, files: number): PullMeter {
  let filesDone = 0;
  let lastDraw = 0;
  let draws = 0;
  const meter: PullMeter = {
    started: Date.now(),
    expectedBytes: 0,
    done: new Map(),
    fileDone: () => {
      filesDone++;
    },
    nextRank: () => ++draws,
    async draw(force = false) {
      if (!force && Date.now() - lastDraw < 2000) return;
      lastDraw = Date.now();
      // Draws may finish out of order: each ranks above the one before, so an older line loses.
      const rank = ++draws;
      const bytes = [...meter.done.values()].reduce((a, b) => a + b, 0);
      const line = progressLine({
        host,
        files,
        filesDone,
        bytes,
        expectedBytes: meter.expectedBytes,
        elapsedMs: Date.now() - meter.started,
      });
      await progress(asMrkdwn(line), rank).catch((error: unknown) =>
        deps.log.warn({ err: error }, 'could not update the progress message'),
      );
    },
  };
  return meter;
}

/**
 * Pulls one file into `dest` and records how it ended on its artifact. A dropped connection is
 * retried once from the start; the partial file is never kept. A file that failed gets a marker
 * beside it that tells the analysis following it so.
 */
async function pullOne(
  deps: RunnerDeps,
  remote: RemoteHost,
  source: PullSource,
  dest: string,
  { id: artifact, sizeBytes: hostBytes }: { id: number; sizeBytes: number },
  meter: PullMeter,
  options: PullOptions,
): Promise<PulledFile> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      const result = await pullFile(remote, source, dest, {
        ...options,
        onProgress: (bytes) => {
          meter.done.set(source, bytes);
          void meter.draw();
        },
      });
      meter.fileDone();
      await completeTransfer(deps.db, artifact, result);
      return { source, hostBytes, result };
    } catch (error) {
      lastError = error;
      meter.done.set(source, 0);
      // Decided by code: only a lost connection is tried again, from the first byte.
      if (asCodedError(error).code !== ErrorCode.ConnectionLost) break;
    }
  }
  const message = (lastError as Error).message;
  await writeFile(failedMarker(dest), redact(message).text.slice(0, 1000));
  await failTransfer(deps.db, artifact, message.slice(0, 1000));
  return { source, hostBytes, error: message };
}

/** The pull's end: its last progress line, its reply, and freeing the disk proposed afterwards. */
async function pullReport(
  deps: RunnerDeps,
  proposal: Proposal,
  { host, remote, files }: { host: string; remote: RemoteHost; files: number },
  results: readonly PulledFile[],
  meter: PullMeter,
  progress: ProgressLine,
): Promise<RunReport> {
  const pulled = results.filter((r) => r.result);
  const failed = results.filter((r) => r.error);
  // The cores' sizes (a file kept compressed and not decoded here: as the host listed it), and
  // what they take on the bot's disk when that is less.
  const contentOf = (r: PulledFile) => r.result!.contentBytes ?? r.hostBytes;
  const bytes = pulled.reduce((sum, r) => sum + contentOf(r), 0);
  const keptBytes = pulled.reduce((sum, r) => sum + r.result!.bytes, 0);
  const kept = keptBytes < bytes ? md` (kept as zstd: ${formatBytes(keptBytes, ONE_DECIMAL)})` : md``;
  const took = (Date.now() - meter.started) / 1000;
  const headline = md`${pulled.length === files ? ':white_check_mark:' : ':warning:'} Pulled ${pulled.length} of ${files} file(s) from ${host}: ${formatBytes(bytes, ONE_DECIMAL)} in ${took.toFixed(1)} s${kept}`;
  // Ranked above every draw: a draw still in flight does not bring the running count back.
  await progress(headline, meter.nextRank()).catch((error: unknown) =>
    deps.log.warn({ err: error }, 'could not update the progress message'),
  );
  const summary = joinMrkdwn(
    [
      headline,
      ...pulled.map(
        (r) =>
          md`• ${basename(r.result!.localPath)} ${formatBytes(contentOf(r), ONE_DECIMAL)}${r.result!.keptAs === 'compressed' ? md`, kept as zstd ${formatBytes(r.result!.bytes, ONE_DECIMAL)}` : md``} sha256 ${r.result!.sha256.slice(0, 12)}`,
      ),
      ...failed.map(
        (r) =>
          md`• ${r.source.container ? `${r.source.container}:` : ''}${r.source.path} failed: ${redact(r.error!).text.slice(0, 200)}`,
      ),
    ],
    '\n',
  ).text;
  return {
    end: {
      ok: failed.length === 0,
      exitCode: failed.length === 0 ? 0 : 1,
      outputBytes: bytes,
      result: { pulled: pulled.length, failed: failed.length, bytes },
      ...(failed.length > 0 ? { error: `${failed.length} file(s) failed` } : {}),
    },
    reply: summary,
    // The analysis was queued when the pull started and follows the files as they land. With the
    // cores home and hashed, freeing the disk and the guard are proposed.
    afterwards: async () => {
      if (pulled.length === 0) return;
      await proposeFreeing(deps, remote, proposal.incidentId).catch((error: unknown) =>
        deps.log.error({ err: error, proposal: proposal.id }, 'could not propose freeing the disk'),
      );
    },
  };
}

/**
 * Deletes the approved files (free-disk.ts), each only while it is still the one pulled, and
 * reports per file and the disk before → after. A file skipped because it changed or is gone is
 * the check doing its work, not a failure; a file that could not be checked or deleted is.
 */
async function runFree(
  deps: RunnerDeps,
  proposal: Proposal,
  items: FreeItem[],
  _run: RunRecord,
): Promise<RunReport> {
  const host = deps.hosts && findHost(deps.hosts, proposal.target);
  if (!host || !deps.ssh)
    throw new CodedError(
      ErrorCode.HostUnknown,
      `${proposal.target} is not in the hosts file, so nothing was deleted`,
    );
  const report = await freeFiles(deps, deps.ssh.host(host.name), proposal, items);
  // The root shows the disk before → after: marked stale, the outbox renders it again.
  await markRootStale(deps.db, proposal.incidentId);
  const count = (status: string) => report.outcomes.filter((o) => o.outcome.status === status).length;
  const deleted = count('deleted');
  const failed = count('failed');
  const name = (i: FreeItem) => `${i.container ? `${i.container}:` : ''}${i.path}`;
  const icon = failed > 0 ? ':warning:' : deleted === items.length ? ':broom:' : ':information_source:';
  const reply = joinMrkdwn(
    [
      // The files' sizes; a sparse core gives back fewer blocks, which the disk lines show.
      md`${icon} Deleted ${deleted} of ${items.length} file(s) on ${host.name} (proposal #${proposal.id}), ${formatBytes(report.freedBytes, ONE_DECIMAL)} of cores`,
      ...report.disk.lines.map((l) => md`Disk ${l}`),
      ...report.outcomes.map(({ item, outcome }) =>
        outcome.status === 'deleted'
          ? md`• ${name(item)} ${formatBytes(item.sizeBytes, ONE_DECIMAL)}: deleted`
          : md`• ${name(item)}: ${outcome.status === 'failed' ? 'not deleted' : `skipped (${outcome.status})`}${outcome.detail ? `: ${clean(outcome.detail)}` : ''}`,
      ),
    ],
    '\n',
  ).text;
  return {
    end: {
      ok: failed === 0,
      exitCode: failed === 0 ? 0 : 1,
      outputBytes: 0,
      result: {
        freedBytes: report.freedBytes,
        deleted,
        skipped: items.length - deleted - failed,
        failed,
        files: report.outcomes.map(({ item, outcome }) => ({
          container: item.container ?? null,
          path: item.path,
          bytes: item.sizeBytes,
          status: outcome.status,
          detail: clean(outcome.detail),
        })),
        disk: report.disk.lines,
        diskBefore: report.disk.before,
        diskAfter: report.disk.after,
      },
      ...(failed > 0 ? { error: `${failed} file(s) could not be checked or deleted` } : {}),
    },
    reply: clean(reply),
    summary: `${icon} ${deleted} of ${items.length} deleted, ${formatBytes(report.freedBytes, ONE_DECIMAL)} of cores`,
  };
}

/** What a script or a query did, ready for the thread: everything here is already redacted. */
interface Outcome {
  ok: boolean;
  exitCode: number | null;
  durationMs: number;
  outputBytes: number;
  /** The status line: exit code, time, what stopped it. */
  status: string;
  /** The first lines of the output (or the query's summary), shown in the reply. */
  preview: string;
  /** The whole output as a file, when it is long or a query's result. */
  file?: { content: string; filename: string; title: string };
  error?: string;
  result: object;
}

const PREVIEW_LINES = 10;
const PREVIEW_CHARS = 1500;

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const clean = (text: string) => redact(text).text;

/** Where it ran, in words. */
const where = (p: ProposalText) =>
  p.kind === 'pull'
    ? `Pull from ${p.target}`
    : p.kind === 'free'
      ? `Freeing ${p.target}`
      : p.kind === 'sql'
        ? `SQL on ${p.target}`
        : p.target === 'evidence'
          ? 'Script on the evidence'
          : `Script on ${p.target}`;

/**
 * Scripts (on the evidence in the sandbox, or on a host over SSH) and read-only SQL: the exact
 * approved text, claimed by claimAndRun (startRun re-hashes it), is executed, and its end is its
 * exit code, time and bytes, with its redacted result as a short reply and the whole output as a
 * file when it is long (always for a query's CSV).
 */
async function runApproved(
  deps: RunnerDeps,
  proposal: Proposal,
  about: ProposalText,
  run: RunRecord,
): Promise<RunReport> {
  const outcome =
    about.kind === 'sql'
      ? await executeQuery(deps, about, run.id)
      : await executeScript(deps, proposal, about, run.id);
  const icon = outcome.ok ? ':white_check_mark:' : ':x:';
  // The output and the status (an error's text) are outside text: escaped, and the output's own
  // backticks cannot close the code block it is shown in.
  const preview = outcome.preview ? md`\n\`\`\`\n${outcome.preview}\n\`\`\`` : '';
  const fileNote = outcome.file
    ? md`\nThe whole ${about.kind === 'sql' ? 'result' : 'output'} is in ${outcome.file.filename}.`
    : '';
  return {
    end: {
      ok: outcome.ok,
      exitCode: outcome.exitCode,
      outputBytes: outcome.outputBytes,
      result: { ...outcome.result, durationMs: outcome.durationMs },
      ...(outcome.error ? { error: outcome.error } : {}),
    },
    reply: clean(
      md`${icon} ${where(about)} (proposal #${proposal.id}): ${outcome.status}${preview}${fileNote}`.text,
    ),
    ...(outcome.file
      ? {
          file: {
            ...outcome.file,
            comment: clean(md`${where(about)} (proposal #${proposal.id}): ${outcome.status}`.text),
          },
          posted: { file: outcome.file.filename, fileBytes: Buffer.byteLength(outcome.file.content) },
        }
      : {}),
    summary: `${icon} ${outcome.status.split('\n')[0]}`,
  };
}

async function executeQuery(deps: RunnerDeps, about: ProposalText, runId: number): Promise<Outcome> {
  const database = deps.sqlDatabases?.find((d) => d.name === about.target);
  if (!database)
    throw new CodedError(
      ErrorCode.SqlRefused,
      `no database named "${about.target}" is configured (NIGHTSHIFT_SQL_DATABASES); nothing ran`,
    );
  // The gate again, on the text about to run: what was checked when proposed is checked now.
  const verdict = await checkReadOnlySql(about.text);
  if (!verdict.ok)
    throw new CodedError(ErrorCode.SqlRefused, `refused before running: ${verdict.reason}; nothing ran`);
  const result = await runReadOnlySql({ database, text: about.text, ...deps.limits?.sql });
  const { csv, summary, redactions } = renderSqlResult(result);
  return {
    ok: true,
    exitCode: 0,
    durationMs: result.durationMs,
    outputBytes: Buffer.byteLength(csv),
    status: `${summary.split('\n')[0]}`,
    preview: summary.split('\n').slice(1).join('\n'),
    file: {
      content: csv,
      filename: `run-${runId}-${about.target}.csv`,
      title: `Result of run ${runId} on ${about.target}`,
    },
    result: {
      rows: result.rows.length,
      columns: result.columns.length,
      truncated: result.truncated,
      redactions,
    },
  };
}

/** What a script did, as its runner (the sandbox, or SSH) told it. */
interface ScriptRun {
  exitCode: number | null;
  signal?: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  truncated: boolean;
  durationMs: number;
  outputBytes?: number;
  /** The evidence sandbox's cgroup: its limits and what hit them. */
  cgroup?: CgroupReport;
}

async function executeScript(
  deps: RunnerDeps,
  proposal: Proposal,
  about: ProposalText,
  runId: number,
): Promise<Outcome> {
  const { r, timeoutMs, maxOutputBytes } = await runScript(deps, proposal, about);
  return scriptOutcome(r, { timeoutMs, maxOutputBytes }, runId);
}

/** Runs the script on the evidence in the sandbox, or on its host over SSH, with the limits it ran under. */
async function runScript(
  deps: RunnerDeps,
  proposal: Proposal,
  about: ProposalText,
): Promise<{ r: ScriptRun; timeoutMs: number; maxOutputBytes: number }> {
  let r: ScriptRun;
  let timeoutMs: number;
  let maxOutputBytes: number;
  if (about.target === 'evidence') {
    const evidence = join(deps.evidenceDir, `incident-${proposal.incidentId}`);
    await mkdir(evidence, { recursive: true });
    // The sandbox user reads the incident's evidence through its group, and cannot write it.
    if (deps.sandboxUser) await shareEvidence(deps.evidenceDir, evidence, deps.sandboxUser);
    const limits = { ...deps.sandboxLimits, ...deps.limits?.sandbox };
    timeoutMs = limits.timeoutMs ?? SANDBOX_DEFAULTS.timeoutMs;
    maxOutputBytes = limits.maxOutputBytes ?? SANDBOX_DEFAULTS.maxOutputBytes;
    r = await runInSandbox({
      script: about.text,
      evidenceDir: evidence,
      ...limits,
      ...(deps.sandboxUser ? { runAs: { uid: deps.sandboxUser.uid, gid: deps.sandboxUser.gid } } : {}),
      // The other incidents' evidence, the bot's data and its SSH keys stay out of sight.
      hide: [
        deps.evidenceDir,
        ...(deps.sandboxHide ?? []),
        ...(deps.hosts?.hosts.flatMap((h) => (h.key ? [h.key] : [])) ?? []),
      ],
    });
  } else {
    const host = deps.hosts && findHost(deps.hosts, about.target);
    if (!host || !deps.ssh)
      throw new CodedError(ErrorCode.HostUnknown, `${about.target} is not in the hosts file; nothing ran`);
    timeoutMs = deps.limits?.host?.timeoutMs ?? HOST_SCRIPT_DEFAULTS.timeoutMs;
    maxOutputBytes = deps.limits?.host?.maxOutputBytes ?? HOST_SCRIPT_DEFAULTS.maxOutputBytes;
    // exec runs it under nice, ionice and the host's own timeout, its output capped.
    r = await deps.ssh.host(host.name).exec({ command: about.text, timeoutMs, maxOutputBytes });
  }
  return { r, timeoutMs, maxOutputBytes };
}

/** The script's outcome for the thread: its output redacted, a preview, the whole output as a file when long. */
function scriptOutcome(
  r: ScriptRun,
  { timeoutMs, maxOutputBytes }: { timeoutMs: number; maxOutputBytes: number },
  runId: number,
): Outcome {
  const known = new KnownSecrets();
  const out = redact(r.stdout);
  const err = redact(r.stderr);
  known.add([...out.secrets, ...err.secrets]);
  const stdout = known.scrub(out.text).text;
  const stderr = known.scrub(err.text).text;
  const output = stderr
    ? `${stdout}${stdout && !stdout.endsWith('\n') ? '\n' : ''}--- stderr ---\n${stderr}`
    : stdout;
  const lines = output.replace(/\n$/, '').split('\n');
  let preview = lines.slice(0, PREVIEW_LINES).join('\n');
  if (preview.length > PREVIEW_CHARS) preview = `${preview.slice(0, PREVIEW_CHARS - 1)}…`;
  const long = lines.length > PREVIEW_LINES || output.length > PREVIEW_CHARS;
  const stops = [
    r.timedOut ? `stopped at its time limit (${seconds(timeoutMs)})` : '',
    r.truncated ? `stopped at the output cap (${formatBytes(maxOutputBytes, ONE_DECIMAL)})` : '',
    ...limitsHit(r.cgroup),
  ].filter(Boolean);
  const exit = r.exitCode === null ? `killed${r.signal ? ` (${r.signal})` : ''}` : `exit ${r.exitCode}`;
  const outputBytes = r.outputBytes ?? Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr);
  return {
    ok: r.exitCode === 0 && !r.timedOut && !r.truncated && limitsHit(r.cgroup).length === 0,
    exitCode: r.exitCode,
    durationMs: r.durationMs,
    outputBytes,
    status: `${[exit, ...stops].join(', ')} in ${seconds(r.durationMs)}, ${formatBytes(outputBytes, ONE_DECIMAL)} of output`,
    preview: output === '' ? '' : preview,
    ...(long
      ? { file: { content: output, filename: `run-${runId}-output.txt`, title: `Output of run ${runId}` } }
      : {}),
    result: {
      timedOut: r.timedOut,
      truncated: r.truncated,
      signal: r.signal ?? null,
      ...(r.cgroup
        ? {
            memoryLimitBytes: r.cgroup.memoryLimitBytes,
            peakMemoryBytes: r.cgroup.peakMemoryBytes,
            oomKills: r.cgroup.oomKills,
            maxProcesses: r.cgroup.maxProcesses,
            forkFailures: r.cgroup.forkFailures,
          }
        : {}),
    },
  };
}

/**
 * What an evidence script ran into in its cgroup, in words: processes the kernel killed at the
 * memory limit of all its processes, forks refused at the process limit. A script whose shell
 * waited for a killed child can still exit 0; the run is not ok then.
 */
function limitsHit(cgroup: CgroupReport | undefined): string[] {
  if (!cgroup) return [];
  const hits: string[] = [];
  if (cgroup.oomKills > 0)
    hits.push(
      `${cgroup.oomKills} process${cgroup.oomKills === 1 ? '' : 'es'} killed at the memory limit (${formatBytes(cgroup.memoryLimitBytes, ONE_DECIMAL)} for all its processes)`,
    );
  if (cgroup.forkFailures > 0)
    hits.push(
      `${cgroup.forkFailures} fork${cgroup.forkFailures === 1 ? '' : 's'} refused at the process limit (${cgroup.maxProcesses} at once)`,
    );
  return hits;
}
