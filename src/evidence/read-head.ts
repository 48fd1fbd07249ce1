import { open } from 'node:fs/promises';
import { SNIFF_BYTES } from '../analyze/container.ts';

/** The first bytes of a file, enough to tell a core, gzip and tar apart (see container.ts). */
export async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SNIFF_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
