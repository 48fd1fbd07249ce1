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
  const reading = new DumpReading(file, info, options.spill ? new SpillStore(options.spill) : undefined);
  const first = followedHead ?? (await readHead(file));
  const outer = sniff(first);
  const compression = isCompression(outer) ? outer : undefined;
  reading.fileTime = chooseDumpTime({
    gzip: outer === 'gzip' ? gzipTime(first) : undefined,
    fileName: fileNameTime(file),
    file: info.mtime,
  });
  const source = openSource(file, followed, followedHead);
  let read = 0;
  const count = (chunk: Buffer) => {
    read += chunk.length;
    if (options.follow) info.size = read;
    onProgress(read);
  };
  await pump(source, compression, reading.fileSink(compression), reading, count);
  // A followed file's size is known only now; records made before its end (tar members) get it too.
  if (options.follow) for (const d of reading.dumps) d.fileBytes = read;
  return reading.result();
}

/** The file's bytes: read from disk, or from the follower with its first chunk put back in front. */
function openSource(
  file: string,
  followed: AsyncGenerator<Buffer> | undefined,
  followedHead: Buffer | undefined,
): Readable {
  if (!followed) return createReadStream(file, { highWaterMark: READ_CHUNK });
  return Readable.from(
    (async function* () {
      if (followedHead && followedHead.length > 0) yield followedHead;
      yield* followed;
    })(),
    { objectMode: false, highWaterMark: READ_CHUNK },
  );
}

/**
 * Feeds the file, decompressed if it is compressed, to the sink, waiting for the sink's pending
 * work between chunks; `count` sees the bytes as read from the file.
 */
async function pump(
  source: Readable,
  compression: Compression | undefined,
  inner: Sink,
  reading: DumpReading,
  count: (chunk: Buffer) => void,
): Promise<void> {
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
      if (reading.pending.length > 0) await reading.settle();
    }
    inner.end();
    await reading.settle();
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
        await reading.settle();
      }
      if (produced === 0 || !/unexpected end/i.test(coded.message)) reading.fail(null, coded);
    } else {
      source.destroy();
      throw coded;
    }
  }
}

/**
 * A reader whose first error stops it: the error is recorded once (`onError`), the rest of the
 * input is read past. `onStop` runs after a failed push, to end what the reader fed.
 */
function stopOnError(
  reader: { push(chunk: Uint8Array): void; end(): void },
  onError: (error: unknown) => void,
  onStop: () => void = () => {},
): Sink {
  let failed = false;
  return {
    push(chunk) {
      if (failed) return;
      try {
        reader.push(chunk);
      } catch (error) {
        failed = true;
        onError(error);
        onStop();
      }
    },
    end() {
      if (failed) return;
      try {
        reader.end();
      } catch (error) {
        onError(error);
      }
    },
  };
}

/** One file's read: the sinks its bytes go through, and what they found, kept in input order. */
class DumpReading {
  readonly dumps: DumpRecord[] = [];
  readonly errors: AnalysisError[] = [];
  /** The time of a dump that is the whole file (not a tar member), known once its head is read. */
  fileTime: DumpTime;
  /**
   * Work the input must wait for before it is read further: a gzipped tar member's inflater
   * catching up. The TarReader pushes synchronously, so without this a gzipped member would
   * queue the whole rest of the archive in memory.
   */
  readonly pending: Array<Promise<void>> = [];
  private container: Container = 'raw';
  // Results are listed in member order, although a gzipped member finishes after those behind it.
  private readonly order = new Map<object, number>();
  private nextSeq = 0;
  private readonly file: string;
  private readonly info: { size: number; mtime: Date };
  private readonly spill: SpillStore | undefined;

  constructor(file: string, info: { size: number; mtime: Date }, spill: SpillStore | undefined) {
    this.file = file;
    this.info = info;
    this.spill = spill;
    this.fileTime = { at: info.mtime, source: 'file' };
  }

  async settle(): Promise<void> {
    while (this.pending.length > 0) await this.pending.shift();
  }

  fail(entry: string | null, error: unknown, seq = this.nextSeq++): void {
    const coded = asCodedError(error);
    const record = { file: this.file, entry, code: coded.code, message: coded.message };
    this.order.set(record, seq);
    this.errors.push(record);
  }

  result(): StreamResult {
    const inOrder = (a: object, b: object) => this.order.get(a)! - this.order.get(b)!;
    return { dumps: this.dumps.sort(inOrder), errors: this.errors.sort(inOrder) };
  }

  /** What the whole file (after its compression, if any) is: a tar, a core, a report, or not a core. */
  fileSink(compression: Compression | undefined): Sink {
    return new Sniffer((head) => {
      const kind: Sniffed = sniff(head);
      if (kind === 'tar') {
        this.container = compression ? `tar+${compression}` : 'tar';
        return this.tarSink();
      }
      if (kind === 'elf') {
        this.container = compression ?? 'raw';
        return this.coreSink(null, this.fileTime, this.nextSeq++);
      }
      if (kind === 'apport' && !compression) {
        this.container = 'apport';
        return this.apportSink(null, this.fileTime, this.nextSeq++);
      }
      const what = compression
        ? `${article(compression)} ${compression} of ${isCompression(kind) ? `${kind} data` : describeUnknown(head)}`
        : describeUnknown(head);
      return this.notCore(null, what, this.nextSeq++);
    });
  }

  /** A dead end: the input was named in an error, the rest of it is read past. */
  private notCore(entry: string | null, what: string, seq: number): Sink {
    this.fail(entry, new CodedError(ErrorCode.NotCore, `not a core dump: ${what}`), seq);
    return { push() {}, end() {} };
  }

  /** A sink that analyses one core; errors from a bad header stop it and are recorded once. */
  private coreSink(entry: string | null, time: DumpTime, seq: number): Sink {
    const analyzer = new DumpStreamAnalyzer(this.spill ? { spill: this.spill } : {});
    return stopOnError(
      { push: (chunk) => analyzer.push(chunk), end: () => this.record(entry, time, seq, analyzer) },
      (error) => this.fail(entry, error, seq),
    );
  }

  private record(entry: string | null, time: DumpTime, seq: number, analyzer: DumpStreamAnalyzer): void {
    const { facts, evidence, sizeBytes } = analyzer.finish();
    // systemd-coredump's and apport's names fill what the core lacks, and date it.
    const named = parseCoreName(basename(entry ?? this.file));
    // mtime: the name's time, else the tar member's, else the file's; time: the most truthful
    // time known (dump-time.ts).
    const mtime = named?.time ?? (time.source === 'tar' ? time.at : this.info.mtime);
    const dated =
      named?.time && time.source !== 'tar' && time.source !== 'gzip'
        ? { at: named.time, source: 'file_name' as const }
        : time;
    const record = {
      file: this.file,
      entry,
      container: this.container,
      fileBytes: this.info.size,
      sizeBytes,
      mtime,
      time: dated,
      facts: withNameFacts(facts, named),
      evidence,
    };
    this.order.set(record, seq);
    this.dumps.push(record);
  }

  /**
   * A member (or apport field) that is itself compressed (core.1234.gz copied out of a container,
   * a systemd-coredump .zst): decompress, then sniff what came out.
   */
  private decompressSink(
    kind: Compression | 'zlib',
    entry: string | null,
    time: DumpTime,
    seq: number,
  ): Sink {
    const stream = decompressor(kind);
    const inside = new Sniffer((head) => {
      if (sniff(head) === 'elf') return this.coreSink(entry, time, seq);
      return this.notCore(
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
      push: (chunk) => {
        if (error !== undefined) return;
        if (!stream.write(chunk)) {
          this.pending.push(
            Promise.race([new Promise<void>((resolve) => stream.once('drain', resolve)), done]),
          );
        }
      },
      end: () => {
        stream.end();
        this.pending.push(
          done.then(() => {
            const coded = error === undefined ? undefined : compressionError(kind, error);
            // Cut short (the tar or the disk ended inside it): analyse what came out, as for a file.
            if (coded === undefined || (produced > 0 && /unexpected end/i.test(coded.message))) inside.end();
            else this.fail(entry, coded, seq);
          }),
        );
      },
    };
  }

  /**
   * An apport .crash report: its CoreDump field is a gzip stream (zstd where apport took the core
   * from systemd-coredump, a bare zlib stream from apport before 2.x's gzip header), read as it is
   * decoded.
   */
  private apportSink(entry: string | null, time: DumpTime, seq: number): Sink {
    let core: Sink | undefined;
    const reader = new ApportReader((bytes) => {
      if (!core) {
        const kind = sniff(bytes);
        core = this.decompressSink(kind === 'gzip' || kind === 'zstd' ? kind : 'zlib', entry, time, seq);
      }
      core.push(bytes);
    });
    const end = () => {
      const { fields } = reader.end();
      if (core) core.end();
      else {
        throw new CodedError(
          ErrorCode.MalformedReport,
          `${describeReport(fields)} with no CoreDump field: there is no core in it to read`,
        );
      }
    };
    return stopOnError(
      { push: (chunk) => reader.push(chunk), end },
      (error) => this.fail(entry, error, seq),
      () => core?.end(),
    );
  }

  /** Each member is told apart by content too: a core, a compressed core, a report, or named for what it is. */
  private memberSink(entry: string, time: DumpTime): Sink {
    const seq = this.nextSeq++;
    return new Sniffer((head) => {
      const kind = sniff(head);
      if (kind === 'elf') return this.coreSink(entry, time, seq);
      if (isCompression(kind)) return this.decompressSink(kind, entry, time, seq);
      if (kind === 'apport') return this.apportSink(entry, time, seq);
      const what = kind === 'tar' ? 'a tar archive inside the tar (extract it first)' : describeUnknown(head);
      return this.notCore(entry, what, seq);
    });
  }

  private tarSink(): Sink {
    let files = 0;
    const reader = new TarReader((header) => {
      files++;
      // A member whose mtime no Date can hold gets the tar file's own.
      const time = header.mtime
        ? chooseDumpTime({ tar: header.mtime, file: this.info.mtime })
        : this.fileTime;
      const sink = this.memberSink(header.name, time);
      return { push: (c) => sink.push(c), end: () => sink.end() };
    });
    const end = () => {
      reader.end();
      // Said rather than left as an empty report: nothing in the tar could be a core.
      if (files === 0) {
        const what =
          reader.entries === 0
            ? 'an empty tar archive'
            : `a tar archive of ${reader.entries} member(s), none of them a regular file`;
        this.fail(null, new CodedError(ErrorCode.NotCore, `not a core dump: ${what}`));
      }
    };
    return stopOnError({ push: (chunk) => reader.push(chunk), end }, (error) => this.fail(null, error));
  }
}

/** "a gzip", "an xz", "an lz4": for messages. */
function article(kind: Compression): string {
  return kind === 'xz' || kind === 'lz4' ? 'an' : 'a';
}
