import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { ApportReader, describeReport } from '../analyze/apport.ts';
import {
  type Compression,
  type Container,
  describeUnknown,
  isCompression,
  SNIFF_BYTES,
  type Sniffed,
  sniff,
} from '../analyze/container.ts';
import { parseCoreName, withNameFacts } from '../analyze/core-name.ts';
import type { DumpRecord } from '../analyze/correlate.ts';
import { DumpStreamAnalyzer } from '../analyze/dump.ts';
import { chooseDumpTime, type DumpTime, fileNameTime, gzipTime } from '../analyze/dump-time.ts';
import type { AnalysisError } from '../analyze/report-schema.ts';
import { TarReader } from '../analyze/tar.ts';
import { asCodedError, CodedError, ErrorCode } from '../errors.ts';
import { compressionError, decompressor } from './decompress.ts';
import { followFile } from './follow.ts';
import { readHead } from './read-head.ts';
import { type SpillConfig, SpillStore } from './spill.ts';

/**
 * Reads a dump file front to back: raw, compressed (gzip, zstd, xz, lz4), tar (what `docker cp`
 * emits) or a compressed tar, or an apport .crash report; a tar's members are each any of these.
 * One pass, decompressing as it goes; nothing is written to disk and memory stays bounded.
 */

const READ_CHUNK = 1024 * 1024;

export interface StreamResult {
  dumps: DumpRecord[];
  errors: AnalysisError[];
}

type Sink = { push(chunk: Uint8Array): void; end(): void };

/** Sniffs the first bytes of a byte stream, then hands everything to the sink that fits. */
class Sniffer {
  private head: Uint8Array[] = [];
  private length = 0;
  private sink: Sink | undefined;
  private readonly choose: (head: Uint8Array) => Sink;
  constructor(choose: (head: Uint8Array) => Sink) {
    this.choose = choose;
  }
  push(chunk: Uint8Array): void {
    if (this.sink) {
      this.sink.push(chunk);
      return;
    }
    this.head.push(chunk);
    this.length += chunk.length;
    if (this.length >= SNIFF_BYTES) this.start();
  }
  end(): void {
    if (!this.sink) this.start();
    this.sink!.end();
  }
  private start(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    this.sink = this.choose(head);
    if (head.length > 0) this.sink.push(head);
  }
}

export async function readDumpStream(
  file: string,
  onProgress: (bytes: number) => void = () => {},
  options: { spill?: SpillConfig; follow?: boolean } = {},
): Promise<StreamResult> {
  // A file still being pulled (follow.ts) has no size yet: it is counted as it is read.
  const info = options.follow ? { size: 0, mtime: new Date() } : await stat(file);
  // Followed, the first chunk is taken from the follower for sniffing and put back in front.
  const followed = options.follow ? followFile(file) : undefined;
  let followedHead: Buffer | undefined;
  if (followed) {
    const first = await followed.next();
    followedHead = first.done ? Buffer.alloc(0) : first.value;
  }
  const spill = options.spill ? new SpillStore(options.spill) : undefined;
  /** The time of a dump that is the whole file (not a tar member), known once its head is read. */
  let fileTime: DumpTime = { at: info.mtime, source: 'file' };
  const dumps: DumpRecord[] = [];
  const errors: AnalysisError[] = [];
  let container: Container = 'raw';
  // Results are listed in member order, although a gzipped member finishes after those behind it.
  const order = new Map<object, number>();
  let nextSeq = 0;
  const fail = (entry: string | null, error: unknown, seq = nextSeq++) => {
    const coded = asCodedError(error);
    const record = { file, entry, code: coded.code, message: coded.message };
    order.set(record, seq);
    errors.push(record);
  };

  /** A sink that analyses one core; errors from a bad header stop it and are recorded once. */
  const coreSink = (
    entry: string | null,
    time: DumpTime,
    seq = nextSeq++,
    onDone?: (complete: boolean) => void,
  ) => {
    const analyzer = new DumpStreamAnalyzer(spill ? { spill } : {});
    let failed = false;
    return {
      push(chunk: Uint8Array) {
        if (failed) return;
        try {
          analyzer.push(chunk);
        } catch (error) {
          failed = true;
          fail(entry, error, seq);
        }
      },
      end(complete = true) {
        onDone?.(complete);
        if (failed) return;
        try {
          const { facts, evidence, sizeBytes } = analyzer.finish();
          // systemd-coredump's and apport's names fill what the core lacks, and date it.
          const named = parseCoreName(basename(entry ?? file));
          // mtime: the name's time, else the tar member's, else the file's; time: the most truthful
          // time known (dump-time.ts).
          const mtime = named?.time ?? (time.source === 'tar' ? time.at : info.mtime);
          const dated =
            named?.time && time.source !== 'tar' && time.source !== 'gzip'
              ? { at: named.time, source: 'file_name' as const }
              : time;
          const record = {
            file,
            entry,
            container,
            fileBytes: info.size,
            sizeBytes,
            mtime,
            time: dated,
            facts: withNameFacts(facts, named),
            evidence,
          };
          order.set(record, seq);
          dumps.push(record);
        } catch (error) {
          fail(entry, error, seq);
        }
      },
    };
  };

  /**
   * Work the input must wait for before it is read further: a gzipped tar member's inflater
   * catching up. The TarReader pushes synchronously, so without this a gzipped member would
   * queue the whole rest of the archive in memory.
   */
  const pending: Array<Promise<void>> = [];
  const settle = async () => {
    while (pending.length > 0) await pending.shift();
  };

  /** A dead end: the input was named in an error, the rest of it is read past. */
  const ignore: Sink = { push() {}, end() {} };
  const notCore = (entry: string | null, what: string, seq: number): Sink => {
    fail(entry, new CodedError(ErrorCode.NotCore, `not a core dump: ${what}`), seq);
    return ignore;
  };

  /**
   * A member (or apport field) that is itself compressed (core.1234.gz copied out of a container,
   * a systemd-coredump .zst): decompress, then sniff what came out.
   */
  const decompressSink = (
    kind: Compression | 'zlib',
    entry: string | null,
    time: DumpTime,
    seq: number,
  ): Sink => {
    const stream = decompressor(kind);
    const inside = new Sniffer((head) => {
      if (sniff(head) === 'elf') return coreSink(entry, time, seq);
      return notCore(
        entry,
        `${kind === 'zlib' ? 'a' : article(kind)} ${kind} of ${describeUnknown(head)}`,
        seq,
      );
    });
    let error: unknown;
    let produced = 0;
    stream.on('data', (chunk: Buffer) => {
      produced += chunk.length;
      inside.push(chunk);
    });
    const done = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('error', (e) => {
        error = e;
        resolve();
      });
    });
    return {
      push(chunk) {
        if (error !== undefined) return;
        if (!stream.write(chunk)) {
          pending.push(Promise.race([new Promise<void>((resolve) => stream.once('drain', resolve)), done]));
        }
      },
      end() {
        stream.end();
        pending.push(
          done.then(() => {
            const coded = error === undefined ? undefined : compressionError(kind, error);
            // Cut short (the tar or the disk ended inside it): analyse what came out, as for a file.
            if (coded === undefined || (produced > 0 && /unexpected end/i.test(coded.message))) inside.end();
            else fail(entry, coded, seq);
          }),
        );
      },
    };
  };

  /**
   * An apport .crash report: its CoreDump field is a gzip stream (zstd where apport took the core
   * from systemd-coredump, a bare zlib stream from apport before 2.x's gzip header), read as it is
   * decoded.
   */
  const apportSink = (entry: string | null, time: DumpTime, seq: number): Sink => {
    let core: Sink | undefined;
    const reader = new ApportReader((bytes) => {
      if (!core) {
        const kind = sniff(bytes);
        core = decompressSink(kind === 'gzip' || kind === 'zstd' ? kind : 'zlib', entry, time, seq);
      }
      core.push(bytes);
    });
    let failed = false;
    return {
      push(chunk) {
        if (failed) return;
        try {
          reader.push(chunk);
        } catch (error) {
          failed = true;
          fail(entry, error, seq);
          core?.end();
        }
      },
      end() {
        if (failed) return;
        try {
          const { fields } = reader.end();
          if (core) core.end();
          else {
            throw new CodedError(
              ErrorCode.MalformedReport,
              `${describeReport(fields)} with no CoreDump field: there is no core in it to read`,
            );
          }
        } catch (error) {
          fail(entry, error, seq);
        }
      },
    };
  };

  /** Each member is told apart by content too: a core, a compressed core, a report, or named for what it is. */
  const memberSink = (entry: string, time: DumpTime): Sink => {
    const seq = nextSeq++;
    return new Sniffer((head) => {
      const kind = sniff(head);
      if (kind === 'elf') return coreSink(entry, time, seq);
      if (isCompression(kind)) return decompressSink(kind, entry, time, seq);
      if (kind === 'apport') return apportSink(entry, time, seq);
      const what = kind === 'tar' ? 'a tar archive inside the tar (extract it first)' : describeUnknown(head);
      return notCore(entry, what, seq);
    });
  };

  const tarSink = (): Sink => {
    let files = 0;
    const reader = new TarReader((header) => {
      files++;
      // A member whose mtime no Date can hold gets the tar file's own.
      const time = header.mtime ? chooseDumpTime({ tar: header.mtime, file: info.mtime }) : fileTime;
      const sink = memberSink(header.name, time);
      return { push: (c) => sink.push(c), end: () => sink.end() };
    });
    let failed = false;
    return {
      push(chunk) {
        if (failed) return;
        try {
          reader.push(chunk);
        } catch (error) {
          failed = true;
          fail(null, error);
        }
      },
      end() {
        if (failed) return;
        try {
          reader.end();
          // Said rather than left as an empty report: nothing in the tar could be a core.
          if (files === 0) {
            const what =
              reader.entries === 0
                ? 'an empty tar archive'
                : `a tar archive of ${reader.entries} member(s), none of them a regular file`;
            fail(null, new CodedError(ErrorCode.NotCore, `not a core dump: ${what}`));
          }
        } catch (error) {
          fail(null, error);
        }
      },
    };
  };

  const first = followedHead ?? (await readHead(file));
  const outer = sniff(first);
  const compression = isCompression(outer) ? outer : undefined;
  fileTime = chooseDumpTime({
    gzip: outer === 'gzip' ? gzipTime(first) : undefined,
    fileName: fileNameTime(file),
    file: info.mtime,
  });
  const inner = new Sniffer((head) => {
    const kind: Sniffed = sniff(head);
    if (kind === 'tar') {
      container = compression ? `tar+${compression}` : 'tar';
      return tarSink();
    }
    if (kind === 'elf') {
      container = compression ?? 'raw';
      return coreSink(null, fileTime);
    }
    if (kind === 'apport' && !compression) {
      container = 'apport';
      return apportSink(null, fileTime, nextSeq++);
    }
    const what = compression
      ? `${article(compression)} ${compression} of ${isCompression(kind) ? `${kind} data` : describeUnknown(head)}`
      : describeUnknown(head);
    return notCore(null, what, nextSeq++);
  });

  const source: Readable = followed
    ? Readable.from(
        (async function* () {
          if (followedHead && followedHead.length > 0) yield followedHead;
          yield* followed;
        })(),
        { objectMode: false, highWaterMark: READ_CHUNK },
      )
    : createReadStream(file, { highWaterMark: READ_CHUNK });
  let read = 0;
  const count = (chunk: Buffer) => {
    read += chunk.length;
    if (options.follow) info.size = read;
    onProgress(read);
  };
  let stream: NodeJS.ReadableStream = source;
  let produced = 0;
  if (compression) {
    source.on('data', (chunk: Buffer) => count(chunk));
    const decompressed = decompressor(compression);
    stream = source.pipe(decompressed);
    source.on('error', (error: Error) => decompressed.destroy(error));
  }
  try {
    for await (const chunk of stream) {
      if (!compression) count(chunk as Buffer);
      produced += (chunk as Buffer).length;
      inner.push(chunk as Buffer);
      if (pending.length > 0) await settle();
    }
    inner.end();
    await settle();
  } catch (error) {
    const coded = compression ? compressionError(compression, error) : asCodedError(error);
    const damaged =
      coded.code === ErrorCode.MalformedGzip ||
      coded.code === ErrorCode.MalformedCompression ||
      /unexpected end/i.test(coded.message);
    if (compression && damaged) {
      // A compressed stream cut short (the disk filled while it was written): analyse what came out.
      if (produced > 0) {
        inner.end();
        await settle();
      }
      if (produced === 0 || !/unexpected end/i.test(coded.message)) fail(null, coded);
    } else {
      source.destroy();
      throw coded;
    }
  }
  const inOrder = (a: object, b: object) => order.get(a)! - order.get(b)!;
  // A followed file's size is known only now; records made before its end (tar members) get it too.
  if (options.follow) for (const d of dumps) d.fileBytes = read;
  return { dumps: dumps.sort(inOrder), errors: errors.sort(inOrder) };
}

/** "a gzip", "an xz", "an lz4": for messages. */
function article(kind: Compression): string {
  return kind === 'xz' || kind === 'lz4' ? 'an' : 'a';
}
