import { z } from 'zod';
import { defineTool, ToolRefusal } from './tool.ts';

/** A host's most recent collection (the collect-host job's findings), from any incident. */

export const lastCollection = defineTool({
  name: 'last_collection',
  description:
    'Shows the findings of the latest finished collection on a host (filesystems, largest directories, core files, core settings, Docker usage), with when it ran. Read-only; runs at once.',
  acts: false,
  input: z.object({ host: z.string().min(1).max(253).describe('The host name') }).strict(),
  async run(input, ctx) {
    const { rows } = await ctx.db.executeSql<{ id: string; finished_at: Date | string; incident_id: string }>(
      `SELECT j.id, j.finished_at, j.incident_id FROM jobs j LEFT JOIN incidents i ON i.id = j.incident_id
       WHERE j.kind = 'collect-host' AND j.state = 'succeeded' AND (j.input->>'host' = $1 OR i.host = $1)
       ORDER BY j.finished_at DESC NULLS LAST, j.id DESC LIMIT 1`,
      [input.host],
    );
    const job = rows[0];
    if (!job) throw new ToolRefusal(`no finished collection on ${input.host}`);
    const findings = await ctx.db.executeSql<{ severity: string; title: string; body: unknown }>(
      'SELECT severity, title, body FROM findings WHERE job_id = $1 ORDER BY id LIMIT 200',
      [job.id],
    );
    const at = job.finished_at instanceof Date ? job.finished_at : new Date(job.finished_at);
    const text = [
      `Collection on ${input.host}, finished ${at.toISOString()} (incident ${job.incident_id}), ${findings.rows.length} finding(s):`,
      ...findings.rows.map((f) => {
        const body = (typeof f.body === 'string' ? JSON.parse(f.body) : f.body) as { detail?: string };
        return `[${f.severity}] ${f.title}${body.detail ? `\n  ${body.detail.slice(0, 4000).replaceAll('\n', '\n  ')}` : ''}`;
      }),
    ].join('\n');
    return { source: `collection on ${input.host}`, text };
  },
});
