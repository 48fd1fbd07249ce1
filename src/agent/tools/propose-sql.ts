import { z } from 'zod';
import { checkReadOnlySql } from '../../runners/sql-check.ts';
import { recordProposal } from './propose.ts';
import { defineTool, ToolRefusal } from './tool.ts';

export const proposeSql = defineTool({
  name: 'propose_sql',
  description:
    'Proposes one read-only SQL statement (a SELECT, or EXPLAIN without ANALYZE) on a configured database for a human to approve; it does NOT run it. It runs inside BEGIN READ ONLY with a statement timeout and a row cap after approval. Anything but a single read is refused before a proposal exists. Your turn ends after this.',
  acts: true,
  input: z
    .object({
      database: z.string().min(1).max(63).describe('A database name from the configuration'),
      text: z.string().min(1).max(20_000).describe('The exact SQL text'),
      why: z.string().min(1).max(2000).describe('The question it answers'),
    })
    .strict(),
  async run(input, ctx) {
    if (!ctx.sqlDatabases.includes(input.database))
      throw new ToolRefusal(
        `${input.database} is not a configured database (${ctx.sqlDatabases.join(', ') || 'none configured'}); nothing was proposed`,
      );
    const check = await checkReadOnlySql(input.text);
    if (!check.ok)
      throw new ToolRefusal(
        `Refused, nothing was proposed: not a single read-only statement: ${check.reason}`,
      );
    const onServer = await ctx.checkSql?.(input.database, input.text);
    if (onServer && !onServer.ok)
      throw new ToolRefusal(`Refused, nothing was proposed: on ${input.database}, ${onServer.reason}`);
    return recordProposal(ctx, {
      kind: 'sql',
      target: input.database,
      text: input.text,
      why: input.why,
      expects: 'rows that answer the question',
    });
  },
});
