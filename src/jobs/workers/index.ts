import type { PgBoss } from 'pg-boss';
import type { ModelClient } from '../../agent/client.ts';
import type { CheckSqlOnDatabase } from '../../agent/tools/tool.ts';
import { getProposal, type Proposal } from '../../approvals/service.ts';
import type { Services } from '../../services.ts';
import { WORKER_POLLING } from '../boss.ts';
import { QUEUES } from '../queues.ts';
import { type AgentHook, agentAfterClose, agentAfterRun, agentTurnJob, type Send } from './agent-turn.ts';
import { type AnalysisDeps, analyzeEvidence } from './analyze-evidence.ts';
import { collectHostJob } from './collect-host.ts';
import { type RunnerDeps, runProposalJob } from './run-proposal.ts';

/**
 * What the workers get: the services they use, and the runner's settings (the sandbox, the SQL
 * databases), one type with RunnerDeps; the agent when it is on.
 */
export interface WorkerDeps
  extends Omit<AnalysisDeps, 'evidenceDir'>,
    Pick<Services, 'now' | 'policy' | 'channel' | 'evidenceDir' | 'slack' | 'hosts' | 'ssh'>,
    Pick<RunnerDeps, 'sqlDatabases' | 'sandboxHide' | 'sandboxUser' | 'sandboxLimits'> {
  /** The agent, when ANTHROPIC_API_KEY is set; absent, the agent is off. */
  agent?: AgentConfig | undefined;
}

/** The agent's settings; the databases it may propose SQL on are the workers' (sqlDatabases). */
export interface AgentConfig {
  model: ModelClient;
  maxTurns: number;
  maxTokens: number;
  /** Asks the target database what a proposed statement's names resolve to there (sql-resolve.ts). */
  checkSql?: CheckSqlOnDatabase | undefined;
}

/** Queues the one run of an approved proposal (the runner makes sure it is one). */
export function runWhenApproved(boss: PgBoss) {
  return async (proposal: Proposal): Promise<void> => {
    await boss.send(
      QUEUES.runProposal.name,
      { proposalId: proposal.id },
      { singletonKey: `proposal:${proposal.id}` },
    );
  };
}

/**
 * Wakes the agent when a proposal of its own closed without running (rejected, expired): for the
 * Slack listeners and the sweeper, which run outside the workers.
 */
export function agentWhenClosed(boss: PgBoss, hook: Omit<AgentHook, 'send'>) {
  const send: Send = async (queue, payload, options) => {
    const sent = await boss.send(queue, payload, options ?? {});
    if (sent !== null || !options?.id) return sent;
    // The wake's job exists. Waiting or running, it will tell the model. Ended (it failed through
    // its retries while the model could not be reached, or it was cancelled) and still asked
    // for, because the model was not told: that id would refuse every new send, so it is freed.
    const job = await boss.getJobById(queue, options.id);
    if (!job || job.state === 'created' || job.state === 'retry' || job.state === 'active') return null;
    await boss.deleteJob(queue, options.id);
    return boss.send(queue, payload, options);
  };
  return (proposal: Pick<Proposal, 'id' | 'incidentId' | 'proposedBy'>): Promise<void> =>
    agentAfterClose({ ...hook, send }, proposal);
}

/**
 * Wakes the agent when the sweeper failed a run of a script or a query (its worker died), as the
 * runner's worker does when such a run ends; a pull wakes it through its analysis.
 */
export function agentWhenRunFailed(boss: PgBoss, hook: Omit<AgentHook, 'send'>) {
  const send: Send = (queue, payload, options) => boss.send(queue, payload, options ?? {});
  return async (proposal: Pick<Proposal, 'kind' | 'incidentId'>): Promise<void> => {
    if (proposal.kind !== 'pull') await agentAfterRun({ ...hook, send }, proposal.incidentId);
  };
}

/** Registers every worker with pg-boss; one job at a time per queue per process. */
export async function registerWorkers(boss: PgBoss, deps: WorkerDeps): Promise<void> {
  const onApproved = runWhenApproved(boss);
  const send: Send = (queue, payload, options) => boss.send(queue, payload, options ?? {});
  const hook = { db: deps.db, channel: deps.channel, agent: deps.agent, send, kick: deps.kick };
  await boss.work(QUEUES.analyzeEvidence.name, WORKER_POLLING, async (jobs) => {
    for (const job of jobs) {
      await analyzeEvidence(deps, job.id, job.data);
      await agentAfterRun(hook, QUEUES.analyzeEvidence.payload.parse(job.data).incidentId);
    }
  });
  const { agent } = deps;
  if (agent) {
    await boss.work(QUEUES.agentTurn.name, WORKER_POLLING, async (jobs) => {
      for (const job of jobs)
        await agentTurnJob(
          {
            ...deps,
            ...agent,
            sqlDatabases: deps.sqlDatabases ?? [],
            hosts: deps.hosts?.hosts.map((h) => h.name) ?? [],
            send,
          },
          job.id,
          job.data,
        );
    });
  }
  await boss.work(QUEUES.runProposal.name, WORKER_POLLING, async (jobs) => {
    for (const job of jobs) {
      await runProposalJob({ ...deps, send: (queue, payload) => boss.send(queue, payload) }, job.data);
      // The agent waits for the result of what it proposed; a pull wakes it through its analysis.
      // An approval whose run did not start in time expired here instead: the agent hears that.
      const proposal = await getProposal(deps.db, QUEUES.runProposal.payload.parse(job.data).proposalId);
      if (proposal && proposal.kind !== 'pull' && (proposal.state === 'done' || proposal.state === 'failed'))
        await agentAfterRun(hook, proposal.incidentId);
      if (proposal?.state === 'expired') await agentAfterClose(hook, proposal);
    }
  });
  const { hosts, ssh } = deps;
  if (hosts && ssh) {
    await boss.work(QUEUES.collectHost.name, WORKER_POLLING, async (jobs) => {
      for (const job of jobs) {
        const collection = await collectHostJob({ ...deps, hosts, ssh, onApproved }, job.id, job.data);
        if (collection) await agentAfterRun(hook, QUEUES.collectHost.payload.parse(job.data).incidentId);
      }
    });
  }
}
