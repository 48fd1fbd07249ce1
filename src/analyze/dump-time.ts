import { basename } from 'node:path';
import { parseCoreName } from './core-name.ts';
/**
 * When a dump was written, from the most truthful source at hand. A file's modification time is
 * the weakest: `git clone`, `cp` and `scp` without -p reset it to the time of the copy. A tar
 * member keeps the core's own time (docker cp writes it), and so does a gzip header (gzip stores
 * the original file's mtime unless told not to with -n). A core's notes hold no wall-clock time.
 */

/** Where a dump's time came from, most truthful first. */
export const TIME_SOURCES = ['tar', 'gzip', 'file_name', 'file'] as const;
export type TimeSource = (typeof TIME_SOURCES)[number];

export interface DumpTime {
  at: Date;
  source: TimeSource;
}

/** The MTIME of a gzip header (RFC 1952), when set: seconds since the epoch, 0 meaning none. */
export function gzipTime(head: Uint8Array): Date | undefined {
  if (head.length < 10 || head[0] !== 0x1f || head[1] !== 0x8b) return undefined;
  const seconds = (head[4]! | (head[5]! << 8) | (head[6]! << 16) | (head[7]! << 24)) >>> 0;
  return seconds === 0 ? undefined : new Date(seconds * 1000);
}

/**
 * The time a dump's file name records, when it records one (systemd-coredump names its files
 * `core.<comm>.<uid>.<boot id>.<pid>.<microseconds>[.zst]`; see core-name.ts).
 */
export function fileNameTime(path: string): Date | undefined {
  return parseCoreName(basename(path))?.time ?? undefined;
}

const valid = (d: Date | undefined): d is Date => d instanceof Date && !Number.isNaN(d.getTime());

/** The most truthful of the times known for a dump; the file's own mtime when nothing better. */
export function chooseDumpTime(known: {
  tar?: Date | undefined;
  gzip?: Date | undefined;
  fileName?: Date | undefined;
  file: Date;
}): DumpTime {
  if (valid(known.tar)) return { at: known.tar, source: 'tar' };
  if (valid(known.gzip)) return { at: known.gzip, source: 'gzip' };
  if (valid(known.fileName)) return { at: known.fileName, source: 'file_name' };
  return { at: known.file, source: 'file' };
}
