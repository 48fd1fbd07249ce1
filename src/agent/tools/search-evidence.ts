import { z } from 'zod';
import { KnownSecrets, REDACTED, redact } from '../../analyze/redact.ts';
import {
  incidentEvidenceDir,
  listEvidenceFiles,
  needlesFor,
  printable,
  printable16,
  readRange,
  scanFile,
  type TextEncoding,
} from './evidence-files.ts';
import { defineTool, ToolRefusal } from './tool.ts';

/**
 * A bounded search for a literal in the incident's local evidence (the pulled cores and files):
 * at most MAX_SCAN_BYTES read over all files, at most `maxMatches` matches, each with its file,
 * byte offset and the printable text around it. The pattern is looked for as UTF-8 and as UTF-16LE:
 * a core keeps an interpreter's wide strings that way, and a byte search for one finds nothing.
 */

export const MAX_SCAN_BYTES = 512 * 1024 * 1024;
const CONTEXT = 80;
/** Read around the shown context, so a secret's name just outside it still marks its value. */
const REDACTION_MARGIN = 256;

const SECRET_NAME =
  '[A-Za-z0-9_.-]*(?:PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH)[A-Za-z0-9_.-]*';

/** Patterns that would let a search guess a secret a character at a time, with what each is. */
const GUESSES: Array<[RegExp, string]> = [
  [new RegExp(String.raw`${SECRET_NAME}["']?\s*[:=]`, 'i'), 'a secret’s name followed by = or :'],
  [/\b(?:Bearer|Basic|Token|Digest)\s/i, 'an Authorization scheme followed by its credential'],
  [/[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/\s@]*:/, 'a URL’s user and password'],
  [
    /\b(?:xox[abposre]-|xapp-|sk-|(?:sk|rk)_live_|AKIA|ASIA|AGPA|AIDA|AROA|gh[pousr]_|github_pat_|AIza|eyJ)/,
    'a token’s prefix',
  ],
];

/** Why a search pattern is refused as a way to guess a secret, or undefined. */
export function guessesASecret(pattern: string, known?: KnownSecrets): string | undefined {
  for (const [test, what] of GUESSES) if (test.test(pattern)) return what;
  if (redact(pattern).count > 0) return 'text the redaction hides';
  if (known && known.scrub(pattern).count > 0) return 'a value already redacted in this incident';
  return undefined;
}

/**
 * The printable text of `wide` from `from` to `to`, redacted as the wider text reads: a value
 * whose name lies outside the shown part, or that the shown part cuts in two, is hidden too.
 */
export function redactedWindow(wide: string, from: number, to: number, known: KnownSecrets): string {
  known.add(redact(wide).secrets);
  // \0 never comes out of printable(): it marks the hidden bytes while offsets stay as they were.
  const shown = known.mask(wide, '\0').slice(from, to).replace(/\0+/g, REDACTED);
  return known.scrub(redact(shown).text).text;
}

/**
 * The secrets in a window's wide (UTF-16LE) text, each also as printable() shows it byte by byte,
 * a dot for each NUL ("h.u.n.t.e.r.2"): an ASCII match's context can hold a wide string, which
 * redact() would not recognise in that form. Read with the NULs dropped, so wide text reads as
 * text; any other unprintable byte ends a line.
 */
export function wideSecrets(bytes: Buffer): string[] {
  let text = '';
  for (const b of bytes) if (b !== 0) text += b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : '\n';
  return redact(text).secrets.flatMap((secret) => [secret, [...secret].join('.')]);
}

export const searchEvidence = defineTool({
  name: 'search_evidence',
  description: `Searches this incident's local evidence files (pulled cores, logs) for a literal text (not a regex), case-sensitive, as UTF-8 and as UTF-16LE. Returns up to maxMatches matches with file, byte offset and the printable text around each. Reads at most ${MAX_SCAN_BYTES / 1024 / 1024} MiB. Read-only; runs at once.`,
  acts: false,
  input: z
    .object({
      pattern: z.string().min(3).max(256).describe('The literal text to find'),
      maxMatches: z.number().int().min(1).max(100).default(20).describe('Default 20'),
    })
    .strict(),
  async run(input, ctx) {
    const known = ctx.knownSecrets ?? new KnownSecrets();
    const guess = guessesASecret(input.pattern, known);
    if (guess)
      throw new ToolRefusal(
        `The pattern holds ${guess}: a search for it would tell a secret apart by its matches, so it did not run. Search for the name alone, or for text around it.`,
      );
    const root = incidentEvidenceDir(ctx.evidenceDir, ctx.incidentId);
    const files = await listEvidenceFiles(root);
    const needles = needlesFor(input.pattern);
    const matches: Array<{ file: string; path: string; offset: number; encoding: TextEncoding }> = [];
    let scanned = 0;
    let filesRead = 0;
    for (const file of files) {
      if (matches.length >= input.maxMatches || scanned >= MAX_SCAN_BYTES) break;
      filesRead++;
      const bytes = needles.map((n) => n.bytes);
      scanned += await scanFile(file.path, bytes, MAX_SCAN_BYTES - scanned, (offset, which) => {
        matches.push({ file: file.name, path: file.path, offset, encoding: needles[which]!.encoding });
        return matches.length < input.maxMatches;
      });
    }
    const lines: string[] = [];
    for (const m of matches) {
      // Context and margin in characters: two bytes each in UTF-16LE, read at the match's parity.
      const width = m.encoding === 'utf16le' ? 2 : 1;
      const length = input.pattern.length * width;
      const before = Math.min(Math.floor(m.offset / width), CONTEXT + REDACTION_MARGIN);
      const wideStart = m.offset - before * width;
      const bytes = await readRange(
        m.path,
        wideStart,
        before * width + length + (CONTEXT + REDACTION_MARGIN) * width,
      );
      const wide = width === 2 ? printable16(bytes, 0) : printable(bytes);
      if (width === 1) known.add(wideSecrets(bytes));
      const from = Math.max(0, before - CONTEXT);
      const to = Math.min(wide.length, before + input.pattern.length + CONTEXT);
      const shown = redactedWindow(wide, from, to, known);
      lines.push(`${m.file} @ ${m.offset}${width === 2 ? ' (UTF-16LE)' : ''}: ${shown}`);
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
