import { z } from 'zod';
import { defineTool } from './tool.ts';

/** The incident's findings (redacted when stored) and the analysis's ranked correlations. */

const MAX_FINDINGS = 200;
const MAX_CORRELATIONS = 40;

interface CorrelationRow {
  value: string;
  kind: string;
  dumps: number;
  total: number;
  stream: boolean;
  why: string;
}

export const listFindings = defineTool({
  name: 'list_findings',
  description:
    "Lists this incident's findings (from collection and analysis, redacted) and the correlations of the latest analysis: values shared across dumps, ranked, with why. Read-only; runs at once.",
  acts: false,
  input: z
    .object({
      severity: z
        .enum(['critical', 'warning', 'info'])
        .optional()
        .describe('Only findings of this severity; default all'),
    })
    .strict(),
  async run(input, ctx) {
    const { rows } = await ctx.db.executeSql<{
      id: string;
      kind: string;
      severity: string;
      title: string;
      body: unknown;
    }>(
      `SELECT id, kind, severity, title, body FROM findings
       WHERE incident_id = $1 AND ($2::text IS NULL OR severity = $2) ORDER BY id LIMIT ${MAX_FINDINGS}`,
      [ctx.incidentId, input.severity ?? null],
    );
    const lines = rows.map((r) => {
      const body = (typeof r.body === 'string' ? JSON.parse(r.body) : r.body) as { detail?: string };
      return `#${r.id} [${r.severity}] (${r.kind}) ${r.title}${body.detail ? `\n  ${body.detail.slice(0, 2000).replaceAll('\n', '\n  ')}` : ''}`;
    });
    const jobs = await ctx.db.executeSql<{ result: unknown }>(
      `SELECT result FROM jobs WHERE incident_id = $1 AND kind = 'analyze-evidence' AND state = 'succeeded'
         AND result IS NOT NULL ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1`,
      [ctx.incidentId],
    );
    const raw = jobs.rows[0]?.result;
    const result = (typeof raw === 'string' ? JSON.parse(raw) : raw) as
      | { correlations?: CorrelationRow[] }
      | undefined;
    const correlations = (result?.correlations ?? []).slice(0, MAX_CORRELATIONS);
    const text = [
      `Findings (${rows.length}${rows.length === MAX_FINDINGS ? ', the first only' : ''}):`,
      ...(lines.length > 0 ? lines : ['(none yet)']),
      '',
      `Correlations of the latest analysis (${correlations.length}):`,
      ...(correlations.length > 0
        ? correlations.map(
            (c) =>
              `- [${c.kind}] ${c.value} — in ${c.dumps} of ${c.total} dumps${c.stream ? ', looks like an endless stream' : ''}: ${c.why}`,
          )
        : ['(none)']),
    ].join('\n');
    return { source: `findings of incident ${ctx.incidentId}`, text };
  },
});
