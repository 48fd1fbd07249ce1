import { lstat, open, readdir, realpath } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
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

const CHUNK = 1 << 20;

/**
 * Calls `onMatch` with the offset of each occurrence of `needle` in the file, reading at most
 * `maxBytes`; stops early when `onMatch` returns false. Returns the bytes read.
 */
export async function scanFile(
  path: string,
  needle: Buffer,
  maxBytes: number,
  onMatch: (offset: number) => boolean,
): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(CHUNK + needle.length);
    let carry = 0;
    let position = 0;
    let read = 0;
    while (read < maxBytes) {
      const want = Math.min(CHUNK, maxBytes - read);
      const { bytesRead } = await handle.read(buffer, carry, want, position);
      if (bytesRead === 0) break;
      read += bytesRead;
      position += bytesRead;
      const end = carry + bytesRead;
      const base = position - end;
      let from = 0;
      for (;;) {
        const at = buffer.subarray(0, end).indexOf(needle, from);
        if (at < 0) break;
        if (!onMatch(base + at)) return read;
        from = at + 1;
      }
      // Keep the tail, so a match across the chunk boundary is found once (it starts in the tail).
      carry = Math.min(needle.length - 1, end);
      buffer.copy(buffer, 0, end - carry, end);
    }
    return read;
  } finally {
    await handle.close();
  }
}

export async function readRange(path: string, start: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Bytes as a line of text: printable ASCII kept, everything else a dot. */
export function printable(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : '.';
  return out;
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
