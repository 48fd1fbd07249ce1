import type { PgBoss } from 'pg-boss';
import { QUEUES } from '../queues.ts';
import { analyzeEvidence, type JobDeps } from './analyze-evidence.ts';
import { type CollectDeps, collectHostJob } from './collect-host.ts';

/** Registers every worker with pg-boss; one job at a time per queue per process. */
export async function registerWorkers(
  boss: PgBoss,
  deps: JobDeps & Partial<Omit<CollectDeps, keyof JobDeps>>,
): Promise<void> {
  await boss.work(QUEUES.analyzeEvidence.name, { pollingIntervalSeconds: 1 }, async (jobs) => {
    for (const job of jobs) await analyzeEvidence(deps, job.id, job.data);
  });
  const { hosts, ssh } = deps;
  if (hosts && ssh) {
    await boss.work(QUEUES.collectHost.name, { pollingIntervalSeconds: 1 }, async (jobs) => {
      for (const job of jobs) await collectHostJob({ ...deps, hosts, ssh }, job.id, job.data);
    });
  }
}
