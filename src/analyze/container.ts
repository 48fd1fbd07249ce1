import { isElf } from './elf.ts';
import { BLOCK, isTarHeader } from './tar.ts';

/**
 * What a file is, told from its first bytes rather than its name: cores arrive as `core`,
 * `core.1234`, `core.1234.gz`, whatever `docker cp ... - | gzip` was redirected to,
 * systemd-coredump's `core.<comm>.<uid>.<boot id>.<pid>.<usec>.zst` (or .xz, .lz4), or apport's
 * `/var/crash/*.crash` reports.
 */

/** The compressions a core (or a tar of cores) is read through. */
export type Compression = 'gzip' | 'zstd' | 'xz' | 'lz4';
export const COMPRESSIONS: readonly Compression[] = ['gzip', 'zstd', 'xz', 'lz4'];

export type Container =
  | 'raw'
  | Compression
  | 'tar'
  | `tar+${Compression}`
  /** An apport .crash report: the core is its base64, gzip-compressed CoreDump field. */
  | 'apport';
export const CONTAINERS = [
  'raw',
  ...COMPRESSIONS,
  'tar',
  ...COMPRESSIONS.map((c) => `tar+${c}` as const),
  'apport',
] as const satisfies readonly Container[];

export type Sniffed = 'elf' | Compression | 'tar' | 'apport' | 'unknown';

export function isCompression(kind: Sniffed): kind is Compression {
  return (COMPRESSIONS as readonly string[]).includes(kind);
}

/** Every apport report starts with its ProblemType field (problem_report.py writes it first). */
const APPORT_START = Buffer.from('ProblemType: ');

/** Bytes needed to tell the forms apart (a tar header is one block). */
export const SNIFF_BYTES = BLOCK;

export function sniff(head: Uint8Array): Sniffed {
  if (isElf(head)) return 'elf';
  const starts = (...bytes: number[]) => head.length >= bytes.length && bytes.every((b, i) => head[i] === b);
  if (starts(0x1f, 0x8b)) return 'gzip';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (starts(0x04, 0x22, 0x4d, 0x18)) return 'lz4';
  if (starts(...APPORT_START)) return 'apport';
  if (head.length >= BLOCK && isTarHeader(head.subarray(0, BLOCK))) return 'tar';
  return 'unknown';
}

/** Names what an unreadable file looks like, so the error tells the engineer what to do. */
export function describeUnknown(head: Uint8Array): string {
  if (head.length === 0) return 'an empty file';
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2-compressed data (decompress it with bzip2 -d first)';
  if (starts(0x02, 0x21, 0x4c, 0x18)) return 'lz4 legacy-format data (decompress it with lz4 -d first)';
  if (starts(0x50, 0x4b, 0x03, 0x04)) return 'a zip archive (unzip it first)';
  if (starts(0x4d, 0x44, 0x4d, 0x50)) return 'a Windows minidump, not a Linux core';
  let printable = 0;
  const sample = head.subarray(0, Math.min(head.length, 512));
  for (const b of sample) if ((b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09) printable++;
  if (printable / sample.length > 0.95) return 'a text file';
  return 'unrecognised binary data';
}
