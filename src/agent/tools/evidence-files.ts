import { lstat, open, readdir, realpath } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { isCompressed, openContent } from '../../evidence/content-stream.ts';
import { ToolRefusal } from './tool.ts';

/**
 * The incident's local evidence, for the read-only tools: files under
 * <evidenceDir>/incident-<id>/, walked without following symlinks, read in bounded chunks. A
 * path from the model is resolved inside that directory or refused.
 */

export const incidentEvidenceDir = (evidenceDir: string, incidentId: number) =>
  resolve(evidenceDir, `incident-${incidentId}`);

export interface EvidenceFile {
  /** Relative to the incident's evidence directory (what the model sees and passes back). */
  name: string;
  path: string;
  size: number;
}

export async function listEvidenceFiles(root: string, limit = 10_000): Promise<EvidenceFile[]> {
  const files: EvidenceFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (files.length >= limit) return;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && !entry.name.endsWith('.part')) {
        const info = await lstat(path);
        files.push({ name: relative(root, path), path, size: info.size });
      }
    }
  };
  await walk(root);
  return files;
}

/** A file the model named, inside the incident's evidence directory and a regular file, or a refusal. */
export async function resolveEvidenceFile(root: string, name: string): Promise<EvidenceFile> {
  const path = resolve(root, name);
  if (path !== root && !path.startsWith(root + sep))
    throw new ToolRefusal(
      `${name} is outside this incident's evidence; use a file name search_evidence gave`,
    );
  let info: import('node:fs').Stats;
  try {
    info = await lstat(path);
  } catch {
    throw new ToolRefusal(`there is no evidence file ${name}; search_evidence lists file names with matches`);
  }
  if (!info.isFile()) throw new ToolRefusal(`${name} is not a regular file`);
  const real = await realpath(path);
  const realRoot = await realpath(root);
  if (!real.startsWith(realRoot + sep)) throw new ToolRefusal(`${name} is outside this incident's evidence`);
  return { name: relative(root, path), path, size: info.size };
}

/** How a text is laid out in memory: a pattern is looked for in both. */
export type TextEncoding = 'ascii' | 'utf16le';

/**
 * The text as bytes in each encoding a process keeps strings in: UTF-8 (ASCII for ASCII text)
 * and UTF-16LE (Python's and Java's wide strings, Windows APIs); a core holds both.
 */
export function needlesFor(text: string): Array<{ bytes: Buffer; encoding: TextEncoding }> {
  return [
    { bytes: Buffer.from(text, 'utf8'), encoding: 'ascii' },
    { bytes: Buffer.from(text, 'utf16le'), encoding: 'utf16le' },
  ];
}

/**
 * Calls `onMatch` with the offset of each occurrence of any of `needles` in the file's content
 * (a compressed file decoded: evidence/content-stream.ts), in order, reading at most `maxBytes` of
 * content; stops early when `onMatch` returns false. Returns the bytes read.
 */
export async function scanFile(
  path: string,
  needles: readonly Buffer[],
  maxBytes: number,
  onMatch: (offset: number, needle: number) => boolean,
): Promise<number> {
  const longest = Math.max(...needles.map((n) => n.length));
  const content = await openContent(path);
  let carry = Buffer.alloc(0);
  let position = 0;
  try {
    for await (const piece of content) {
      const chunk = (piece as Buffer).subarray(0, maxBytes - position);
      position += chunk.length;
      const view = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      const base = position - view.length;
      const found: Array<[number, number]> = [];
      for (const [which, needle] of needles.entries()) {
        for (let at = view.indexOf(needle); at >= 0; at = view.indexOf(needle, at + 1)) {
          // One that lies wholly in the carried tail was found with the chunk before.
          if (at + needle.length > carry.length) found.push([at, which]);
        }
      }
      found.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      for (const [at, which] of found) if (!onMatch(base + at, which)) return position;
      // Keep the tail, so a match across the chunk boundary is found once (it ends past the tail).
      carry = Buffer.from(view.subarray(view.length - Math.min(longest - 1, view.length)));
      if (position >= maxBytes) break;
    }
    return position;
  } finally {
    content.destroy();
  }
}

/** `length` bytes of the file's content from `start` (a compressed file decoded up to there). */
export async function readRange(path: string, start: number, length: number): Promise<Buffer> {
  if (!(await isCompressed(path))) {
    const handle = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, start);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }
  const content = await openContent(path);
  const out: Buffer[] = [];
  let position = 0;
  let have = 0;
  try {
    for await (const piece of content) {
      const chunk = piece as Buffer;
      const from = Math.max(0, start - position);
      position += chunk.length;
      if (from >= chunk.length) continue;
      const take = chunk.subarray(from, from + (length - have));
      out.push(take);
      have += take.length;
      if (have >= length) break;
    }
  } finally {
    content.destroy();
  }
  return Buffer.concat(out);
}

/** Bytes as a line of text: printable ASCII kept, everything else a dot. */
export function printable(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : '.';
  return out;
}

/**
 * UTF-16LE bytes as a line of text, from `from` on (the parity of a match): a printable ASCII
 * character followed by a NUL is kept, any other pair is a dot.
 */
export function printable16(bytes: Buffer, from: number): string {
  let out = '';
  for (let i = from; i + 1 < bytes.length; i += 2) {
    const b = bytes[i]!;
    out += bytes[i + 1] === 0 && b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : '.';
  }
  return out;
}

/**
 * UTF-16LE runs of printable ASCII of at least `min` characters, at either byte parity, with
 * their offsets from `base`.
 */
export function strings16In(
  bytes: Buffer,
  base: number,
  min: number,
): Array<{ offset: number; text: string }> {
  const found: Array<{ offset: number; text: string }> = [];
  for (const parity of [0, 1]) {
    let start = -1;
    let text = '';
    for (let i = parity; i <= bytes.length; i += 2) {
      const b = i + 1 < bytes.length ? bytes[i]! : 0;
      const ok = b >= 0x20 && b <= 0x7e && bytes[i + 1] === 0;
      if (ok) {
        if (start < 0) start = i;
        text += String.fromCharCode(b);
      } else if (start >= 0) {
        if (text.length >= min) found.push({ offset: base + start, text });
        start = -1;
        text = '';
      }
    }
  }
  return found.sort((a, b) => a.offset - b.offset);
}

/** Printable ASCII runs of at least `min` bytes, with their offsets from `base`. */
export function stringsIn(bytes: Buffer, base: number, min: number): Array<{ offset: number; text: string }> {
  const found: Array<{ offset: number; text: string }> = [];
  let start = -1;
  for (let i = 0; i <= bytes.length; i++) {
    const b = i < bytes.length ? bytes[i]! : 0;
    const ok = b >= 0x20 && b <= 0x7e;
    if (ok && start < 0) start = i;
    if (!ok && start >= 0) {
      if (i - start >= min) found.push({ offset: base + start, text: bytes.toString('latin1', start, i) });
      start = -1;
    }
  }
  return found;
}
