import { z } from 'zod';
import { findingsOf, type StoredFinding } from '../../store/findings.ts';
import { latestAnalysisResult } from '../../store/jobs.ts';
import { defineTool } from './tool.ts';

/** The incident's findings (redacted when stored) and the analysis's ranked correlations. */

const MAX_FINDINGS = 200;
const MAX_CORRELATIONS = 40;

/** A finding's detail, cut to `max` characters and indented under its title; '' when it has none. */
export const indentedDetail = (f: Pick<StoredFinding, 'body'>, max: number): string =>
  f.body.detail ? `\n  ${f.body.detail.slice(0, max).replaceAll('\n', '\n  ')}` : '';

/** A finding as the model reads it: id, severity, kind, title, and its detail cut to `max` characters. */
export const findingLine = (f: StoredFinding, max: number): string =>
  `#${f.id} [${f.severity}] (${f.kind}) ${f.title}${indentedDetail(f, max)}`;

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
    const rows = await findingsOf(
      ctx.db,
      { incidentId: ctx.incidentId, severity: input.severity },
      MAX_FINDINGS,
    );
    const lines = rows.map((f) => findingLine(f, 2000));
    const result = await latestAnalysisResult(ctx.db, ctx.incidentId);
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
