import { z } from 'zod';

/**
 * The background work, by queue: names and the zod schema of each payload, validated when a job
 * is sent and again when it is worked (a payload written by an older bot may not fit).
 */
export const QUEUES = {
  analyzeEvidence: {
    name: 'analyze-evidence',
    payload: z.object({
      incidentId: z.number().int().positive(),
      /** Files or directories of evidence already on the bot host. */
      paths: z.array(z.string().min(1)).min(1).max(1000),
      /** The paths are files a pull is still writing: read as they grow (evidence/follow.ts). */
      follow: z.boolean().optional(),
    }),
  },
  collectHost: {
    name: 'collect-host',
    payload: z.object({
      incidentId: z.number().int().positive(),
      /** The host as the alert named it: a name, address or label in the hosts file. */
      host: z.string().min(1).max(253),
    }),
  },
  runProposal: {
    name: 'run-proposal',
    payload: z.object({
      /** An approved proposal; the runner re-checks its approvals and hash before anything runs. */
      proposalId: z.number().int().positive(),
    }),
  },
  agentTurn: {
    name: 'agent-turn',
    payload: z.object({
      /** The incident whose agent takes its next step (new findings, or a run's result). */
      incidentId: z.number().int().positive(),
    }),
  },
} as const;

export type AnalyzeEvidencePayload = z.infer<typeof QUEUES.analyzeEvidence.payload>;
