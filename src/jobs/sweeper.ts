import { rm } from 'node:fs/promises';
import { expireProposals, failStaleRuns, type Proposal, RUN_HEARTBEAT } from '../approvals/service.ts';
import { forgetSecretsBefore } from '../evidence/known-secrets.ts';
import type { Services } from '../services.ts';
import { md } from '../slack/blocks/mrkdwn.ts';
import { refreshProposalMessage } from '../slack/proposal-messages.ts';
import { closedUntold } from '../store/agent.ts';
import { expireEvidence, incidentsWithEvidence } from '../store/evidence-artifacts.ts';
import { incidentsWithoutCollection } from '../store/incidents.ts';
import { runMessageKey } from '../store/message-keys.ts';
import { appendAudit, queueThreadMessage } from '../store/records.ts';

/**
 * Housekeeping on a timer, safe to run in every bot process at once (rows are claimed with SKIP
 * LOCKED or guarded by their state): proposals past their time are marked expired, their
 * messages say so and the agent that made one is woken; a run whose worker stopped writing its
 * heartbeat (the process or its host died) is failed, the thread told why and whoever waits for
 * its result woken; evidence past its retention period is deleted from the bot host, its record
 * (size, sha256, origin) kept, and so are the secrets remembered beside it; a disk incident whose
 * collection was lost is collected.
 */
export interface SweeperDeps extends Pick<Services, 'db' | 'log' | 'now' | 'slack'> {
  evidenceDays: number;
  /** Where evidence is kept: the secrets remembered beside it go with it (evidence/known-secrets.ts). */
  evidenceDir?: string | undefined;
  /** Queues the collection of a disk or /investigate incident (idempotent: one job id per incident). */
  startCollection?: ((incidentId: number, host: string) => Promise<void>) | undefined;
  /**
   * Tells whoever waits on a proposal that it closed without running (the agent, when it made
   * it: agentAfterClose). Idempotent: one job id per proposal.
   */
  onClosed?: ((proposal: Pick<Proposal, 'id' | 'incidentId' | 'proposedBy'>) => Promise<void>) | undefined;
  /** Whether the agent is on (ANTHROPIC_API_KEY): then wakes it never got are sent again. */
  agentOn?: boolean | undefined;
  /**
   * How old a running run's heartbeat may get before the run is failed, in milliseconds; default
   * RUN_HEARTBEAT.staleAfterMs (120,000), eight heartbeats missed.
   */
  runStaleAfterMs?: number | undefined;
  /** Tells whoever waits for a run's result that the sweeper failed it (the agent: agentAfterRun). */
  onRunFailed?: ((proposal: Proposal) => Promise<void>) | undefined;
  /** The channel of a thread whose incident has none yet (INCIDENT_CHANNEL). */
  channel?: string | undefined;
  /** Asks the Slack outbox to post what was queued. */
  kick?: (() => void) | undefined;
}

export async function sweep(
  deps: SweeperDeps,
  now: Date,
): Promise<{ expired: number; deleted: number; collections: number; wakes: number; abandoned: number }> {
  const abandoned = await failAbandonedRuns(deps, now);
  const expired = await expireProposals(deps.db, now);
  for (const p of expired) {
    // The message first: the expiry is committed, and a failed wake must not leave live buttons.
    await refreshProposalMessage(deps.db, deps.slack, p.id, now, undefined, deps.log);
    await deps
      .onClosed?.(p)
      .catch((error: unknown) =>
        deps.log.warn(
          { err: error, proposal: p.id },
          'could not wake the agent; the next sweep sends it again',
        ),
      );
  }
  // A closure of the agent's proposal it was never told of, though it can still take a turn: the
  // wake was lost (the bot died between a rejection's commit and the send, or while the runner
  // expired an approval). Sent again; the job id is the proposal's, so this never makes a second
  // turn, and the turn that tells the model marks the proposal.
  let wakes = 0;
  if (deps.onClosed && deps.agentOn) {
    const justExpired = new Set(expired.map((p) => p.id));
    for (const p of await closedUntold(deps.db, { limit: 50 })) {
      if (justExpired.has(p.id)) continue;
      await deps.onClosed({ ...p, proposedBy: 'agent' });
      wakes++;
    }
  }
  const cutoff = new Date(now.getTime() - deps.evidenceDays * 86_400_000);
  const deleted = await expireEvidence(deps.db, cutoff, now);
  for (const artifact of deleted) {
    await rm(artifact.localPath, { force: true });
    await appendAudit(deps.db, {
      actor: 'nightshift',
      action: 'evidence.deleted',
      incidentId: artifact.incidentId,
      subject: { artifact: artifact.id, path: artifact.localPath, retentionDays: deps.evidenceDays },
    });
  }
  // The secrets found in an incident's findings are kept as long as any of its evidence is.
  if (deps.evidenceDir)
    await forgetSecretsBefore(deps.evidenceDir, cutoff, await incidentsWithEvidence(deps.db));
  // A disk incident, or one opened with /investigate, whose collection was never queued (the bot
  // died between the alert's or command's commit and the send): queue it now. The job id is the incident's, so this never makes a second one.
  let collections = 0;
  if (deps.startCollection) {
    for (const incident of await incidentsWithoutCollection(deps.db, new Date(now.getTime() - 60_000), 50)) {
      await deps.startCollection(incident.id, incident.host);
      collections++;
    }
  }
  return { expired: expired.length, deleted: deleted.length, collections, wakes, abandoned };
}

/**
 * Fails the runs whose worker stopped writing their heartbeat, then says so in each thread (a
 * reply keyed as the run's result, which the agent reads) and on the proposal's message, and wakes
 * whoever waits for the result. The failure is committed first: a message or a wake that fails
 * is logged, and the run stays failed.
 */
async function failAbandonedRuns(deps: SweeperDeps, now: Date): Promise<number> {
  const runs = await failStaleRuns(deps.db, now, deps.runStaleAfterMs ?? RUN_HEARTBEAT.staleAfterMs);
  for (const { runId, proposal, error } of runs) {
    deps.log.error({ proposal: proposal.id, run: runId }, `run failed: ${error}`);
    try {
      await queueThreadMessage(deps.db, {
        incidentId: proposal.incidentId,
        key: runMessageKey(runId, 'result'),
        fallbackChannel: deps.channel ?? '#incidents',
        body: {
          type: 'text',
          text: md`:x: Run ${runId} of proposal #${proposal.id} (${proposal.kind} on ${proposal.target}) failed: ${error}. It may have run in part; propose it again to run it again.`
            .text,
          blocks: [],
        },
      });
      await refreshProposalMessage(
        deps.db,
        deps.slack,
        proposal.id,
        now,
        ':x: Failed: its worker stopped answering',
        deps.log,
      );
      deps.kick?.();
      await deps.onRunFailed?.(proposal);
    } catch (err) {
      deps.log.warn({ err, proposal: proposal.id, run: runId }, 'could not tell the thread of a failed run');
    }
  }
  return runs.length;
}

export function startSweeper(deps: SweeperDeps, everyMs = 30_000): { stop(): void } {
  const timer = setInterval(() => {
    sweep(deps, deps.now()).catch((error: unknown) => deps.log.warn({ err: error }, 'sweep failed'));
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
