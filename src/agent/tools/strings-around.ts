import { z } from 'zod';
import {
  incidentEvidenceDir,
  needlesFor,
  readRange,
  resolveEvidenceFile,
  scanFile,
  strings16In,
  stringsIn,
} from './evidence-files.ts';
import { guessesASecret, MAX_SCAN_BYTES } from './search-evidence.ts';
import { defineTool, ToolRefusal } from './tool.ts';

/** The printable strings near a value in a dump: what surrounded a URL in memory (headers, a request). */

const MAX_STRINGS = 200;

export const stringsAround = defineTool({
  name: 'strings_around',
  description:
    'Shows the printable strings, ASCII and UTF-16LE (at least minLength characters), within radius bytes around an occurrence of value (UTF-8 or UTF-16LE) in one evidence file (a name search_evidence gave), each with its byte offset. Bounded; read-only; runs at once.',
  acts: false,
  input: z
    .object({
      file: z.string().min(1).max(1024).describe('An evidence file name as search_evidence gave it'),
      value: z.string().min(3).max(256).describe('The literal to look around'),
      occurrence: z.number().int().min(1).max(1000).default(1).describe('Which occurrence, 1 = the first'),
      radius: z.number().int().min(64).max(16_384).default(2048).describe('Bytes each side; default 2048'),
      minLength: z.number().int().min(4).max(64).default(6).describe('Shortest string kept; default 6'),
    })
    .strict(),
  async run(input, ctx) {
    // Whether a value is found at all would tell a guessed secret apart, as a search would.
    const guess = guessesASecret(input.value, ctx.knownSecrets);
    if (guess)
      throw new ToolRefusal(
        `The value holds ${guess}: looking for it would tell a secret apart by whether it is found, so it did not run. Look around the name alone, or text near it.`,
      );
    const root = incidentEvidenceDir(ctx.evidenceDir, ctx.incidentId);
    const file = await resolveEvidenceFile(root, input.file);
    const needles = needlesFor(input.value).map((n) => n.bytes);
    let seen = 0;
    let found: number | undefined;
    let needle = needles[0]!;
    await scanFile(file.path, needles, MAX_SCAN_BYTES, (offset, which) => {
      seen++;
      if (seen < input.occurrence) return true;
      found = offset;
      needle = needles[which]!;
      return false;
    });
    if (found === undefined)
      throw new ToolRefusal(
        `${JSON.stringify(input.value)} occurs ${seen} time(s) in ${file.name}${seen > 0 ? `, not ${input.occurrence}` : ''}`,
      );
    const start = Math.max(0, found - input.radius);
    const bytes = await readRange(file.path, start, found - start + needle.length + input.radius);
    const strings = [
      ...stringsIn(bytes, start, input.minLength),
      ...strings16In(bytes, start, input.minLength).map((s) => ({ ...s, wide: true })),
    ]
      .sort((a, b) => a.offset - b.offset)
      .slice(0, MAX_STRINGS);
    const text = [
      `${strings.length} string(s) within ${input.radius} bytes of ${JSON.stringify(input.value)} at ${file.name} @ ${found}:`,
      ...strings.map(
        (s) =>
          `${s.offset}${s.offset <= found! && found! < s.offset + s.text.length * ('wide' in s ? 2 : 1) ? ' *' : ''}${'wide' in s ? ' (UTF-16LE)' : ''}: ${s.text.slice(0, 512)}`,
      ),
    ].join('\n');
    return { source: `${file.name} around ${found}`, text };
  },
});
