import type { PgBoss } from 'pg-boss';
import type { Policy } from '../../approvals/policy.ts';
import type { Proposal } from '../../approvals/service.ts';
import type { SshConnections } from '../../collect/ssh.ts';
import type { HostsFile } from '../../config/hosts.ts';
import type { SqlDatabase } from '../../config/sql-databases.ts';
import type { SlackPoster } from '../../slack/outbox.ts';
import { QUEUES } from '../queues.ts';
import { analyzeEvidence, type JobDeps } from './analyze-evidence.ts';
import { collectHostJob } from './collect-host.ts';
import { runProposalJob } from './run-proposal.ts';

export interface WorkerDeps extends JobDeps {
  policy: Policy;
  channel: string;
  evidenceDir: string;
  slack?: SlackPoster | undefined;
  hosts?: HostsFile | undefined;
  ssh?: SshConnections | undefined;
  now?: () => Date;
  /** The databases SQL proposals may name. */
  sqlDatabases?: readonly SqlDatabase[] | undefined;
  /** Host paths evidence scripts must not see. */
  sandboxHide?: readonly string[] | undefined;
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

/** Registers every worker with pg-boss; one job at a time per queue per process. */
export async function registerWorkers(boss: PgBoss, deps: WorkerDeps): Promise<void> {
  const onApproved = runWhenApproved(boss);
  await boss.work(QUEUES.analyzeEvidence.name, { pollingIntervalSeconds: 1 }, async (jobs) => {
    for (const job of jobs) await analyzeEvidence(deps, job.id, job.data);
  });
  await boss.work(QUEUES.runProposal.name, { pollingIntervalSeconds: 1 }, async (jobs) => {
    for (const job of jobs)
      await runProposalJob({ ...deps, send: (queue, payload) => boss.send(queue, payload) }, job.data);
  });
  const { hosts, ssh } = deps;
  if (hosts && ssh) {
    await boss.work(QUEUES.collectHost.name, { pollingIntervalSeconds: 1 }, async (jobs) => {
      for (const job of jobs) await collectHostJob({ ...deps, hosts, ssh, onApproved }, job.id, job.data);
    });
  }
}
