import { open } from 'node:fs/promises';
import { SNIFF_BYTES } from '../analyze/container.ts';

/** The first bytes of a file, enough to tell a core, gzip and tar apart (see container.ts). */
export async function readHead(path: string, length = SNIFF_BYTES): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
