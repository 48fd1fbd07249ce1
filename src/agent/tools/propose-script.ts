import { z } from 'zod';
import { recordProposal } from './propose.ts';
import { defineTool, ToolRefusal } from './tool.ts';

export const proposeScript = defineTool({
  name: 'propose_script',
  description:
    "Proposes a shell script for a human to approve; it does NOT run it. where: 'evidence' (a sandbox over this incident's local evidence at /evidence, read-only, no network; a container's core is kept as the tar docker cp makes of it, zstd-compressed where the host had zstd: read `….tar.zst` with `zstd -dc FILE | tar -xO`) or a host name from the hosts file (over SSH, under nice/ionice and a timeout). The exact text is shown to approvers and runs only after approval. Your turn ends after this.",
  acts: true,
  input: z
    .object({
      where: z.string().min(1).max(253).describe("'evidence' or a host name"),
      text: z.string().min(1).max(20_000).describe('The exact script text'),
      why: z.string().min(1).max(2000).describe('The question it answers'),
      expects: z.string().min(1).max(2000).describe('What it expects to find'),
    })
    .strict(),
  async run(input, ctx) {
    if (input.where !== 'evidence' && !ctx.hosts.includes(input.where))
      throw new ToolRefusal(
        `${input.where} is neither 'evidence' nor a host in the hosts file (${ctx.hosts.join(', ') || 'none configured'}); nothing was proposed`,
      );
    return recordProposal(ctx, {
      kind: 'script',
      target: input.where,
      text: input.text,
      why: input.why,
      expects: input.expects,
    });
  },
});
