import { isElf } from './elf.ts';
import { BLOCK, isTarHeader } from './tar.ts';

/**
 * What a file is, told from its first bytes rather than its name: cores arrive as `core`,
 * `core.1234`, `core.1234.gz`, or whatever `docker cp ... - | gzip` was redirected to.
 */

export type Container = 'raw' | 'gzip' | 'tar' | 'tar+gzip';

export type Sniffed = 'elf' | 'gzip' | 'tar' | 'unknown';

/** Bytes needed to tell the forms apart (a tar header is one block). */
export const SNIFF_BYTES = BLOCK;

export function sniff(head: Uint8Array): Sniffed {
  if (isElf(head)) return 'elf';
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= BLOCK && isTarHeader(head.subarray(0, BLOCK))) return 'tar';
  return 'unknown';
}

/** Names what an unreadable file looks like, so the error tells the engineer what to do. */
export function describeUnknown(head: Uint8Array): string {
  if (head.length === 0) return 'an empty file';
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd-compressed data (decompress it with zstd -d first)';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00))
    return 'xz-compressed data (decompress it with xz -d first)';
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2-compressed data (decompress it with bzip2 -d first)';
  if (starts(0x04, 0x22, 0x4d, 0x18)) return 'lz4-compressed data (decompress it with lz4 -d first)';
  if (starts(0x50, 0x4b, 0x03, 0x04)) return 'a zip archive (unzip it first)';
  if (starts(0x4d, 0x44, 0x4d, 0x50)) return 'a Windows minidump, not a Linux core';
  let printable = 0;
  const sample = head.subarray(0, Math.min(head.length, 512));
  for (const b of sample) if ((b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09) printable++;
  if (printable / sample.length > 0.95) return 'a text file';
  return 'unrecognised binary data';
}
