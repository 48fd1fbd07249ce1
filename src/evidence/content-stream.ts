import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { isCompression, sniff } from '../analyze/container.ts';
import { decompressor } from './decompress.ts';
import { readHead } from './read-head.ts';

/**
 * An evidence file's content, whatever form it is kept in: a pull kept as the host's zstd stream
 * (`.zst`), systemd-coredump's compressed store (zstd, xz, lz4), a gzip'd core: decoded as it is
 * read; any other file as it is. Offsets in the content are what the tools and the analysis name.
 */
export async function openContent(path: string): Promise<Readable> {
  const kind = sniff(await readHead(path));
  const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
  if (!isCompression(kind)) return file;
  const decoded = decompressor(kind);
  file.on('error', (error) => decoded.destroy(error));
  return file.pipe(decoded) as unknown as Readable;
}

/** Whether the file is kept in a compressed form (its content is decoded to be read). */
export async function isCompressed(path: string): Promise<boolean> {
  return isCompression(sniff(await readHead(path)));
}

/**
 * The first `length` bytes of the content (fewer if it is shorter, or a compressed file is cut
 * before them); a compressed file is decoded only that far.
 */
export async function readContentHead(path: string, length: number): Promise<Buffer> {
  const stream = await openContent(path);
  const chunks: Buffer[] = [];
  let have = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      have += (chunk as Buffer).length;
      if (have >= length) break;
    }
  } catch (error) {
    // A stream cut short still has a head.
    if (have === 0) throw error;
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, length);
}
