import { apiErrorStatus } from '../../agent/client.ts';
import { type AgentDeps, agentOffNotice, runAgentTurn, type TurnOutcome } from '../../agent/turn.ts';
import { redact } from '../../analyze/redact.ts';
import type { Proposal } from '../../approvals/service.ts';
import { md } from '../../slack/blocks/mrkdwn.ts';
import type { Db } from '../../store/db.ts';
import { agentNoticeKey } from '../../store/message-keys.ts';
import { appendAudit, queueThreadMessage } from '../../store/records.ts';
import { stableJobId } from '../job-ids.ts';
import { QUEUES } from '../queues.ts';

/**
 * The agent's job: one turn on an incident (see agent/turn.ts). A turn another process is
 * running comes back a few seconds later; a model that cannot be reached, even after the SDK's
 * retries, is said in the thread once per job and the job fails (pg-boss retries it, and the
 * stored conversation continues where it was).
 */

export type Send = (
  queue: string,
  payload: object,
  options?: { startAfter?: number; id?: string },
) => Promise<unknown>;

export interface AgentTurnDeps extends AgentDeps {
  send: Send;
}

export async function agentTurnJob(deps: AgentTurnDeps, jobId: string, raw: unknown): Promise<TurnOutcome> {
  const { incidentId } = QUEUES.agentTurn.payload.parse(raw);
  let outcome: TurnOutcome;
  try {
    outcome = await runAgentTurn(deps, incidentId);
  } catch (error) {
    const status = apiErrorStatus(error);
    const message = redact((error as Error).message).text.slice(0, 300);
    await queueThreadMessage(deps.db, {
      incidentId,
      key: agentNoticeKey(incidentId, `error:${jobId}`),
      fallbackChannel: deps.channel,
      body: {
        type: 'text',
        text: md`:warning: The agent could not finish its turn${status ? ` (the model answered ${status})` : ''}: ${message}. It will try again.`
          .text,
        blocks: [],
      },
    });
    deps.kick?.();
    throw error;
  }
  if (outcome.kind === 'busy') {
    await deps.send(QUEUES.agentTurn.name, { incidentId }, { startAfter: 5 });
    return outcome;
  }
  if (outcome.kind !== 'nothing_new')
    await appendAudit(deps.db, {
      actor: 'agent',
      action: `agent.${outcome.kind}`,
      incidentId,
      subject: { job: jobId, ...outcome },
    });
  return outcome;
}

export interface AgentHook {
  db: Db;
  channel: string;
  /** Absent when the agent is off (no ANTHROPIC_API_KEY). */
  agent?: unknown;
  send: Send;
  kick?: (() => void) | undefined;
}

/**
 * What happens when something the agent should hear about finished (an analysis, a collection,
 * the run of a proposal): its next turn is queued; when the agent is off, the thread says so
 * once. The runner of proposals calls this after a run finished.
 */
export async function agentAfterRun(hook: AgentHook, incidentId: number): Promise<void> {
  if (!hook.agent) {
    await agentOffNotice(hook.db, incidentId, hook.channel);
    hook.kick?.();
    return;
  }
  await hook.send(QUEUES.agentTurn.name, { incidentId });
}

/**
 * A proposal closed without running (rejected, expired): when the agent made it, its next turn
 * is queued, which tells the model (see agent/turn.ts), so it does not wait for a result that
 * will never come. The job id is the proposal's: a retried decision, a second sweep or the
 * sweeper re-sending a wake it thinks was lost queue one turn. Proposals of people and of
 * Nightshift itself wake nothing; when the agent is off, the thread says so once, as after a run.
 */
export async function agentAfterClose(
  hook: AgentHook,
  proposal: Pick<Proposal, 'id' | 'incidentId' | 'proposedBy'>,
): Promise<void> {
  if (proposal.proposedBy !== 'agent') return;
  if (!hook.agent) {
    await agentOffNotice(hook.db, proposal.incidentId, hook.channel);
    hook.kick?.();
    return;
  }
  await hook.send(
    QUEUES.agentTurn.name,
    { incidentId: proposal.incidentId },
    { id: stableJobId(`agent-turn:closed:${proposal.id}`) },
  );
}
