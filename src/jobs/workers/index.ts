import type { PgBoss } from 'pg-boss';
import { QUEUES } from '../queues.ts';
import { analyzeEvidence, type JobDeps } from './analyze-evidence.ts';

/** Registers every worker with pg-boss; one job at a time per queue per process. */
export async function registerWorkers(boss: PgBoss, deps: JobDeps): Promise<void> {
  await boss.work(QUEUES.analyzeEvidence.name, { pollingIntervalSeconds: 1 }, async (jobs) => {
    for (const job of jobs) await analyzeEvidence(deps, job.id, job.data);
  });
}
