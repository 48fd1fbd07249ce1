import { z } from 'zod';
import { findingsOf } from '../../store/findings.ts';
import { latestCollection } from '../../store/jobs.ts';
import { indentedDetail } from './list-findings.ts';
import { defineTool, ToolRefusal } from './tool.ts';

/** A host's most recent collection (the collect-host job's findings), from any incident. */

export const lastCollection = defineTool({
  name: 'last_collection',
  description:
    'Shows the findings of the latest finished collection on a host (filesystems, largest directories, core files, core settings, Docker usage), with when it ran. Read-only; runs at once.',
  acts: false,
  input: z.object({ host: z.string().min(1).max(253).describe('The host name') }).strict(),
  async run(input, ctx) {
    const job = await latestCollection(ctx.db, input.host);
    if (!job) throw new ToolRefusal(`no finished collection on ${input.host}`);
    const findings = await findingsOf(ctx.db, { jobId: job.id }, 200);
    const text = [
      `Collection on ${input.host}, finished ${job.finishedAt.toISOString()} (incident ${job.incidentId}), ${findings.length} finding(s):`,
      ...findings.map((f) => `[${f.severity}] ${f.title}${indentedDetail(f, 4000)}`),
    ].join('\n');
    return { source: `collection on ${input.host}`, text };
  },
});
