import { type FileHandle, open, readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { CodedError, ErrorCode } from '../errors.ts';

/**
 * Reads a file while a pull (collect/pull.ts) is still writing it, so the analysis of a pulled
 * core runs as its bytes arrive instead of after the whole batch is in.
 *
 * Why follow the file rather than tee the pull's stream into the analysis process (pipes, fds):
 * - The analysis stays a separate process (the bot keeps PGlite on V8's baseline compiler) and
 *   needs no channel of its own per stream: it is told the paths, as it is today.
 * - The pull never waits for the analysis. With a pipe, an analysis slower than the link (2 cores,
 *   8 streams) would hold every SSH channel open and the evidence store would fill at the
 *   analyzer's pace; a crashed analysis would break the pulls. Here the pull writes at full speed
 *   and the analysis trails it.
 * - Bytes just written are read back from the page cache, not the disk, and only once: the
 *   analysis reads each byte as it lands, not a second time after the batch.
 *
 * The pull's protocol, by names only (so a worker thread or another process can follow it):
 * `<path>.part` while it is written; renamed to `<path>` when the file is whole; a
 * `<path>.failed` marker (its text the reason) when the pull gave up. A `<path>.part` with another
 * inode means the pull started again from the first byte (a dropped connection is retried once):
 * FollowRestarted is thrown and the caller starts the file's analysis again.
 */

export const FOLLOW_POLL_MS = 50;
const CHUNK = 1024 * 1024;

export const failedMarker = (path: string) => `${path}.failed`;

async function inode(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch {
    return undefined;
  }
}

async function failure(path: string): Promise<string | undefined> {
  try {
    return (await readFile(failedMarker(path), 'utf8')).trim() || 'the pull failed';
  } catch {
    return undefined;
  }
}

/** The bytes of `path` as they are written, until it is whole; throws when the pull failed. */
export async function* followFile(
  path: string,
  options: { pollMs?: number; signal?: AbortSignal } = {},
): AsyncGenerator<Buffer> {
  const pollMs = options.pollMs ?? FOLLOW_POLL_MS;
  let handle: FileHandle | undefined;
  // Open the part being written, or the whole file when the pull was done before we looked.
  while (!handle) {
    options.signal?.throwIfAborted();
    handle =
      (await open(path, 'r').catch(() => undefined)) ??
      (await open(`${path}.part`, 'r').catch(() => undefined));
    if (handle) break;
    const failed = await failure(path);
    if (failed)
      throw new CodedError(
        ErrorCode.EvidenceIncomplete,
        `the pull failed before any byte arrived: ${failed}`,
      );
    await sleep(pollMs);
  }
  let read = 0;
  try {
    const mine = (await handle.stat()).ino;
    for (;;) {
      options.signal?.throwIfAborted();
      const buffer = Buffer.allocUnsafe(CHUNK);
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, read);
      if (bytesRead > 0) {
        read += bytesRead;
        yield buffer.subarray(0, bytesRead);
        continue;
      }
      // At the end of what is there: whole (renamed to its name), failed, restarted, or still coming.
      if ((await inode(path)) === mine) {
        // The rename happens after the last write: one more read takes what landed since.
        const { bytesRead: last } = await handle.read(buffer, 0, CHUNK, read);
        if (last === 0) return;
        read += last;
        yield buffer.subarray(0, last);
        continue;
      }
      const failed = await failure(path);
      if (failed)
        throw new CodedError(
          ErrorCode.EvidenceIncomplete,
          `the pull stopped after ${read} bytes, so this file is cut short and was not analysed whole: ${failed}`,
        );
      const whole = await inode(path);
      const part = await inode(`${path}.part`);
      if ((whole !== undefined && whole !== mine) || (part !== undefined && part !== mine))
        throw new CodedError(ErrorCode.FollowRestarted, `the pull of ${path} started again`);
      await sleep(pollMs);
    }
  } finally {
    await handle.close();
  }
}
