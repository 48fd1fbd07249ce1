import { closeSync, ftruncateSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import type { OverflowEntry, OverflowSpill } from '../analyze/evidence.ts';
import type { StringEncoding } from '../analyze/strings.ts';

/**
 * Run files: the overflow of EvidenceCollector (distinct values past its in-memory caps), written
 * sorted by key so any number of them can be merged in one streaming pass (src/evidence/overflow.ts).
 *
 * A run is a sequence of records: u32 LE byte length of the key, u32 LE count, u8 encoding
 * (0 ascii, 1 utf16le), then the key in UTF-8. Every thread of one analysis writes into the same
 * temporary directory and draws on one byte budget (a counter in shared memory), so the disk an
 * analysis may take is bounded whatever the number of threads or dumps.
 */

/** What a thread needs to spill; it crosses to worker threads with the task. */
export interface SpillConfig {
  dir: string;
  /** Bytes written so far by every thread: one BigInt64 (shared). */
  used: SharedArrayBuffer;
  /** Bytes the runs of one analysis may take in all. */
  limit: number;
}

const HEADER = 9;
const WRITE_BUFFER = 1024 * 1024;
/** Per run being read: a merge of 256 runs holds 16 MiB of buffers. */
const READ_BUFFER = 64 * 1024;

const ENCODINGS: readonly StringEncoding[] = ['ascii', 'utf16le'];

export function newSpillConfig(dir: string, limit: number): SpillConfig {
  return { dir, used: new SharedArrayBuffer(8), limit };
}

let nextRun = 0;

/**
 * Run files this thread merged into another (compaction) and writes its next runs into, of one
 * spill directory (the last this thread used: an analysis removes its directory whole at its end).
 * Why: creating a file costs about 0.6 ms on this machine kind's ext4, an empty one too, and
 * truncating or deleting one about as much, while writing one again in place costs 0.13 ms; eight
 * text-dense cores of long values write two thousand runs of 1 MiB (1.6 of 20 CPU s went to
 * creating them). A thread keeps at most MAX_RECYCLED (about 1 MiB each, overflow.c's arena).
 */
const recycled = { dir: '', paths: [] as string[] };
const MAX_RECYCLED = 128;

/**
 * Hands run files whose records were merged into another to this thread's next runs (or deletes
 * them when it holds enough): they must not be read again.
 */
export function recycleRuns(config: SpillConfig, paths: readonly string[]): void {
  if (recycled.dir !== config.dir) {
    recycled.dir = config.dir;
    recycled.paths = [];
  }
  for (const path of paths) {
    if (recycled.paths.length < MAX_RECYCLED) recycled.paths.push(path);
    else rmSync(path, { force: true });
  }
}

/** Deletes the run files this thread holds for its next runs: the overflow is resolved. */
export function dropRecycled(config: SpillConfig): void {
  if (recycled.dir !== config.dir) return;
  for (const path of recycled.paths.splice(0)) rmSync(path, { force: true });
}

/** A recycled run file opened for writing over, or undefined (none, or it is gone). */
function openRecycled(config: SpillConfig): { path: string; fd: number } | undefined {
  while (recycled.dir === config.dir && recycled.paths.length > 0) {
    const path = recycled.paths.pop()!;
    try {
      return { path, fd: openSync(path, 'r+') };
    } catch {
      // Gone (its directory removed): the next one, or a new file.
    }
  }
  return undefined;
}

/** A fresh run path in the config's directory, unique across the threads of this process. */
export function runPath(config: SpillConfig): string {
  return join(config.dir, `${process.pid}-${threadId}-${nextRun++}.run`);
}

/** Writes a run record by record; close() returns its size. */
/**
 * Opens runs for a WebAssembly merge; `read` reads them (into its memory), each from its start (0,
 * or where `starts` says: the worker's part of a shared resolve, see overflow-split.ts). A run read
 * to its end is closed and, unless `deleteRead` is false, deleted there and then, off this thread
 * (freeing its pages took 0.7 s of the merge of eight text-dense cores, at its end); close()
 * closes the others and waits for the deletions.
 */
export function openRuns(
  paths: readonly (string | undefined)[],
  options: { deleteRead?: boolean; starts?: readonly number[] } = {},
) {
  const deleteRead = options.deleteRead ?? true;
  const positions = paths.map((_, i) => options.starts?.[i] ?? 0);
  const fds: Array<number | undefined> = [];
  const deleted: Array<Promise<void>> = [];
  const close = async () => {
    for (const [i, fd] of fds.entries()) {
      if (fd !== undefined) closeSync(fd);
      fds[i] = undefined;
    }
    await Promise.all(deleted);
  };
  try {
    for (const path of paths) fds.push(path === undefined ? undefined : openSync(path, 'r'));
  } catch (error) {
    void close();
    throw error;
  }
  const read = (source: number, memory: Buffer, at: number, max: number) => {
    const fd = fds[source];
    if (fd === undefined) return 0;
    const got = readSync(fd, memory, at, max, positions[source]!);
    positions[source]! += got;
    if (got === 0) {
      closeSync(fd);
      fds[source] = undefined;
      if (deleteRead) deleted.push(rm(paths[source]!, { force: true }));
    }
    return got;
  };
  return { read, close };
}

/**
 * Writes an item's record (key `kind NUL value`) at `at` in `out`, with `count` in its count field
 * (a kept item's index where the merge reads kept values as a source) and encoding 0; returns its
 * length. The caller has made room: 10 bytes and the kind, and the value's UTF-8.
 */
export function writeItemRecord(out: Buffer, at: number, kind: string, value: string, count: number): number {
  let length = out.write(kind, at + HEADER, 'latin1');
  out[at + HEADER + length++] = 0;
  length += out.write(value, at + HEADER + length, 'utf8');
  out.writeUInt32LE(length, at);
  out.writeUInt32LE(count, at + 4);
  out[at + 8] = 0;
  return HEADER + length;
}

export class RunWriter {
  private readonly fd: number;
  private readonly buffer = Buffer.allocUnsafe(WRITE_BUFFER);
  private at = 0;
  bytes = 0;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
    this.fd = openSync(path, 'w');
  }

  add(key: string, count: number, encoding: StringEncoding): void {
    if (this.at + HEADER + key.length * 3 > this.buffer.length) this.flush();
    const length = this.buffer.write(key, this.at + HEADER, 'utf8');
    this.buffer.writeUInt32LE(length, this.at);
    this.buffer.writeUInt32LE(Math.min(count, 0xffffffff), this.at + 4);
    this.buffer[this.at + 8] = encoding === 'ascii' ? 0 : 1;
    this.at += HEADER + length;
  }

  private flush(): void {
    let done = 0;
    while (done < this.at) done += writeSync(this.fd, this.buffer, done, this.at - done);
    this.bytes += this.at;
    this.at = 0;
  }

  close(): number {
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
    }
    return this.bytes;
  }
}

/** Reads a run front to back: next() moves to the following record (false at the end). */
export class RunReader {
  key = '';
  count = 0;
  encoding: StringEncoding = 'ascii';
  private fd: number | undefined;
  private readonly buffer = Buffer.allocUnsafe(READ_BUFFER);
  private start = 0;
  private end = 0;
  private eof = false;

  constructor(path: string) {
    this.fd = openSync(path, 'r');
  }

  next(): boolean {
    if (!this.fill(HEADER)) return this.finish();
    const length = this.buffer.readUInt32LE(this.start);
    if (!this.fill(HEADER + length)) return this.finish();
    this.count = this.buffer.readUInt32LE(this.start + 4);
    this.encoding = ENCODINGS[this.buffer[this.start + 8]!] ?? 'ascii';
    this.key = this.buffer.toString('utf8', this.start + HEADER, this.start + HEADER + length);
    this.start += HEADER + length;
    return true;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private finish(): false {
    this.close();
    return false;
  }

  /** Whether `n` bytes are buffered from start, reading more if needed. */
  private fill(n: number): boolean {
    if (this.end - this.start >= n) return true;
    if (this.fd === undefined) return false;
    this.buffer.copyWithin(0, this.start, this.end);
    this.end -= this.start;
    this.start = 0;
    while (this.end < n && !this.eof) {
      const read = readSync(this.fd, this.buffer, this.end, this.buffer.length - this.end, null);
      if (read === 0) this.eof = true;
      this.end += read;
    }
    return this.end >= n;
  }
}

/** The spill port of EvidenceCollector: each call writes one run, within the shared budget. */
export class SpillStore implements OverflowSpill {
  private readonly used: BigInt64Array;
  private readonly config: SpillConfig;

  constructor(config: SpillConfig) {
    this.config = config;
    this.used = new BigInt64Array(config.used);
  }

  /** Claims `bytes` of the shared budget; false when that would pass the limit. */
  private claim(bytes: number): boolean {
    if (this.config.limit <= 0) return false;
    return Number(Atomics.add(this.used, 0, BigInt(bytes))) + bytes <= this.config.limit;
  }

  writeRun(run: Uint8Array): string | undefined {
    if (!this.claim(run.length)) return undefined;
    // A recycled file is written over in place and cut to this run's length (see recycleRuns).
    const reused = openRecycled(this.config);
    const path = reused?.path ?? runPath(this.config);
    let fd: number | undefined = reused?.fd;
    try {
      fd ??= openSync(path, 'w');
      for (let done = 0; done < run.length; ) done += writeSync(fd, run, done, run.length - done, done);
      if (reused) ftruncateSync(fd, run.length);
      closeSync(fd);
      return path;
    } catch {
      // The disk is full or the directory is gone: these values are lost, and counted so.
      try {
        if (fd !== undefined) closeSync(fd);
      } catch {}
      rmSync(path, { force: true });
      return undefined;
    }
  }

  write(entries: readonly OverflowEntry[]): string | undefined {
    let estimate = 0;
    for (const [key] of entries) estimate += HEADER + key.length;
    if (!this.claim(estimate)) return undefined;
    const path = runPath(this.config);
    let writer: RunWriter | undefined;
    try {
      writer = new RunWriter(path);
      for (const [key, count, encoding] of entries) writer.add(key, count, encoding);
      writer.close();
      return path;
    } catch {
      // The disk is full or the directory is gone: these values are lost, and counted so.
      try {
        writer?.close();
      } catch {}
      rmSync(path, { force: true });
      return undefined;
    }
  }
}
