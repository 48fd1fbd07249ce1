import { z } from 'zod';
import { incidentEvidenceDir, listEvidenceFiles, printable, readRange, scanFile } from './evidence-files.ts';
import { defineTool } from './tool.ts';

/**
 * A bounded search for a literal in the incident's local evidence (the pulled cores and files):
 * at most MAX_SCAN_BYTES read over all files, at most `maxMatches` matches, each with its file,
 * byte offset and the printable bytes around it.
 */

export const MAX_SCAN_BYTES = 512 * 1024 * 1024;
const CONTEXT = 80;

export const searchEvidence = defineTool({
  name: 'search_evidence',
  description: `Searches this incident's local evidence files (pulled cores, logs) for a literal byte pattern (not a regex), case-sensitive. Returns up to maxMatches matches with file, byte offset and the printable text around each. Reads at most ${MAX_SCAN_BYTES / 1024 / 1024} MiB. Read-only; runs at once.`,
  acts: false,
  input: z
    .object({
      pattern: z.string().min(3).max(256).describe('The literal text to find'),
      maxMatches: z.number().int().min(1).max(100).default(20).describe('Default 20'),
    })
    .strict(),
  async run(input, ctx) {
    const root = incidentEvidenceDir(ctx.evidenceDir, ctx.incidentId);
    const files = await listEvidenceFiles(root);
    const needle = Buffer.from(input.pattern, 'utf8');
    const matches: Array<{ file: string; path: string; offset: number }> = [];
    let scanned = 0;
    let filesRead = 0;
    for (const file of files) {
      if (matches.length >= input.maxMatches || scanned >= MAX_SCAN_BYTES) break;
      filesRead++;
      scanned += await scanFile(file.path, needle, MAX_SCAN_BYTES - scanned, (offset) => {
        matches.push({ file: file.name, path: file.path, offset });
        return matches.length < input.maxMatches;
      });
    }
    const lines: string[] = [];
    for (const m of matches) {
      const start = Math.max(0, m.offset - CONTEXT);
      const around = await readRange(m.path, start, m.offset - start + needle.length + CONTEXT);
      lines.push(`${m.file} @ ${m.offset}: ${printable(around)}`);
    }
    const limits = [
      matches.length >= input.maxMatches ? `stopped at ${input.maxMatches} matches` : '',
      scanned >= MAX_SCAN_BYTES ? `stopped after reading ${MAX_SCAN_BYTES} bytes` : '',
    ].filter(Boolean);
    const text = [
      `${matches.length} match(es) for ${JSON.stringify(input.pattern)} in ${filesRead} of ${files.length} file(s), ${scanned} bytes read${limits.length > 0 ? ` (${limits.join('; ')})` : ''}.`,
      ...lines,
    ].join('\n');
    return { source: `search_evidence ${input.pattern}`, text };
  },
});
