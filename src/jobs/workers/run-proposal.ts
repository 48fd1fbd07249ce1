import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { finishRun, getProposal, type Proposal, startRun } from '../../approvals/service.ts';
import { type PullResult, type PullSource, pullFile } from '../../collect/pull.ts';
import { formatBytes, localName, parsePullText, progressLine, pullText } from '../../collect/pull-plan.ts';
import type { SshConnections } from '../../collect/ssh.ts';
import { findHost, type HostsFile } from '../../config/hosts.ts';
import { CodedError, ErrorCode } from '../../errors.ts';
import type { SlackPoster } from '../../slack/outbox.ts';
import { refreshProposalMessage } from '../../slack/proposal-messages.ts';
import { editThreadMessage } from '../../slack/thread-edits.ts';
import { appendAudit, queueThreadMessage } from '../../store/records.ts';
import { QUEUES } from '../queues.ts';
import type { JobDeps } from './job-run.ts';

/**
 * The runner of approved proposals. It re-reads the proposal, rebuilds the exact text it is
 * about to execute from what it parsed, and claims the one run with that text's hash (the
 * database refuses the claim without the approvals of that hash). A retried job, a second
 * worker or a crash after the claim never runs it again.
 */

export interface RunnerDeps extends JobDeps {
  /** Slack's Web API when Slack is on: messages are edited in place there too. */
  slack?: SlackPoster | undefined;
  hosts?: HostsFile | undefined;
  ssh?: SshConnections | undefined;
  evidenceDir: string;
  channel: string;
  /** Queues a job (the analysis of what was pulled). */
  send(queue: string, payload: object): Promise<unknown>;
  now?: () => Date;
}

export async function runProposalJob(deps: RunnerDeps, raw: unknown): Promise<void> {
  const { proposalId } = QUEUES.runProposal.payload.parse(raw);
  const proposal = await getProposal(deps.db, proposalId);
  if (!proposal) throw new CodedError(ErrorCode.NotApproved, `there is no proposal ${proposalId}`);
  if (proposal.kind === 'pull') return runPull(deps, proposal);
  // Scripts and SQL come with the agent; until their runners exist they never run.
  throw new CodedError(
    ErrorCode.NotApproved,
    `proposal ${proposalId}: no runner for ${proposal.kind} here; nothing ran`,
  );
}

const now = (deps: RunnerDeps) => deps.now?.() ?? new Date();

async function runPull(deps: RunnerDeps, proposal: Proposal): Promise<void> {
  const sources = parsePullText(proposal.text);
  const run = await startRun(deps.db, proposal.id, {
    kind: 'pull',
    target: proposal.target,
    text: pullText(sources),
  });
  if (!run) {
    deps.log.info({ proposal: proposal.id }, 'proposal already ran; not running it again');
    return;
  }
  await refreshProposalMessage(deps.db, deps.slack, proposal.id, now(deps));
  const host = deps.hosts && findHost(deps.hosts, proposal.target);
  if (!host || !deps.ssh) {
    const error = `${proposal.target} is not in the hosts file, so nothing was pulled`;
    await finishRun(deps.db, proposal, run.id, { ok: false, error });
    await refreshProposalMessage(deps.db, deps.slack, proposal.id, now(deps), `:x: ${error}`);
    return;
  }
  const remote = deps.ssh.host(host.name);
  const dir = join(deps.evidenceDir, `incident-${proposal.incidentId}`, `run-${run.id}`);
  await mkdir(dir, { recursive: true });
  const progressKey = `run:${run.id}:progress`;
  await queueThreadMessage(deps.db, {
    incidentId: proposal.incidentId,
    key: progressKey,
    fallbackChannel: deps.channel,
    body: {
      type: 'text',
      text: `:arrow_down: Pulling ${sources.length} file(s) from ${host.name}…`,
      blocks: [],
    },
  });
  deps.kick?.();

  const started = Date.now();
  const done = new Map<PullSource, number>();
  let filesDone = 0;
  let lastDraw = 0;
  // The collection recorded each core it found (size included) as a pending artifact.
  const artifacts = new Map<PullSource, number>();
  let expected = 0;
  for (const source of sources) {
    const { rows } = await deps.db.executeSql<{ id: string; size_bytes: string | null }>(
      `UPDATE evidence_artifacts SET state = 'transferring', run_id = $5, error = NULL
       WHERE id = (SELECT id FROM evidence_artifacts WHERE incident_id = $1 AND host = $2
                     AND container IS NOT DISTINCT FROM $3 AND remote_path = $4 AND state IN ('pending', 'failed')
                   ORDER BY id DESC LIMIT 1)
       RETURNING id, size_bytes`,
      [proposal.incidentId, host.name, source.container ?? null, source.path, run.id],
    );
    let row = rows[0];
    if (!row) {
      const inserted = await deps.db.executeSql<{ id: string; size_bytes: string | null }>(
        `INSERT INTO evidence_artifacts (incident_id, host, container, remote_path, state, run_id)
         VALUES ($1, $2, $3, $4, 'transferring', $5) RETURNING id, size_bytes`,
        [proposal.incidentId, host.name, source.container ?? null, source.path, run.id],
      );
      row = inserted.rows[0]!;
    }
    artifacts.set(source, Number(row.id));
    expected += Number(row.size_bytes ?? 0);
  }
  const draw = async (force = false) => {
    if (!force && Date.now() - lastDraw < 2000) return;
    lastDraw = Date.now();
    const bytes = [...done.values()].reduce((a, b) => a + b, 0);
    const text = progressLine({
      host: host.name,
      files: sources.length,
      filesDone,
      bytes,
      expectedBytes: expected,
      elapsedMs: Date.now() - started,
    });
    await editThreadMessage(deps.db, deps.slack, progressKey, { text, blocks: [] }).catch((error: unknown) =>
      deps.log.warn({ err: error }, 'could not update the progress message'),
    );
  };

  const results: Array<{ source: PullSource; result?: PullResult; error?: string }> = [];
  await Promise.all(
    sources.map(async (source) => {
      const artifact = artifacts.get(source)!;
      const dest = join(dir, localName(source));
      // A dropped connection is retried once from the start; the partial file is never kept.
      let lastError: unknown;
      for (let attempt = 1; attempt <= 2; attempt++) {
        try {
          const result = await pullFile(remote, source, dest, {
            onProgress: (bytes) => {
              done.set(source, bytes);
              void draw();
            },
          });
          filesDone++;
          await deps.db.executeSql(
            `UPDATE evidence_artifacts SET state = 'complete', local_path = $2, size_bytes = $3, sha256 = $4, completed_at = now()
             WHERE id = $1`,
            [artifact, result.localPath, result.bytes, result.sha256],
          );
          results.push({ source, result });
          return;
        } catch (error) {
          lastError = error;
          done.set(source, 0);
          if (!/connection|dropped|closed|ECONNRESET/i.test((error as Error).message)) break;
        }
      }
      const message = (lastError as Error).message;
      await deps.db.executeSql(`UPDATE evidence_artifacts SET state = 'failed', error = $2 WHERE id = $1`, [
        artifact,
        message.slice(0, 1000),
      ]);
      results.push({ source, error: message });
    }),
  );
  await draw(true);

  const pulled = results.filter((r) => r.result);
  const failed = results.filter((r) => r.error);
  const bytes = pulled.reduce((sum, r) => sum + r.result!.bytes, 0);
  const seconds = (Date.now() - started) / 1000;
  const summary = [
    `${pulled.length === sources.length ? ':white_check_mark:' : ':warning:'} Pulled ${pulled.length} of ${sources.length} file(s) from ${host.name}: ${formatBytes(bytes)} in ${seconds.toFixed(1)} s`,
    ...pulled.map(
      (r) =>
        `• ${localName(r.source)} ${formatBytes(r.result!.bytes)} sha256 ${r.result!.sha256.slice(0, 12)}`,
    ),
    ...failed.map(
      (r) =>
        `• ${r.source.container ? `${r.source.container}:` : ''}${r.source.path} failed: ${r.error!.slice(0, 200)}`,
    ),
  ].join('\n');
  await finishRun(deps.db, proposal, run.id, {
    ok: failed.length === 0,
    exitCode: failed.length === 0 ? 0 : 1,
    outputBytes: bytes,
    result: { pulled: pulled.length, failed: failed.length, bytes },
    ...(failed.length > 0 ? { error: `${failed.length} file(s) failed` } : {}),
  });
  await queueThreadMessage(deps.db, {
    incidentId: proposal.incidentId,
    key: `run:${run.id}:result`,
    fallbackChannel: deps.channel,
    body: { type: 'text', text: summary, blocks: [] },
  });
  await appendAudit(deps.db, {
    actor: 'nightshift',
    action: 'run.result_posted',
    incidentId: proposal.incidentId,
    subject: { proposal: proposal.id, run: run.id, bytes: summary.length },
  });
  await refreshProposalMessage(deps.db, deps.slack, proposal.id, now(deps));
  deps.kick?.();
  // When a batch is in, analyse it as one set: findings, then the cross-dump correlations.
  if (pulled.length > 0) {
    await deps.send(QUEUES.analyzeEvidence.name, {
      incidentId: proposal.incidentId,
      paths: pulled.map((r) => r.result!.localPath),
    });
  }
}
