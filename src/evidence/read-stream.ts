import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { type Container, describeUnknown, SNIFF_BYTES, sniff } from '../analyze/container.ts';
import type { DumpRecord } from '../analyze/correlate.ts';
import { DumpStreamAnalyzer } from '../analyze/dump.ts';
import { chooseDumpTime, type DumpTime, fileNameTime, gzipTime } from '../analyze/dump-time.ts';
import type { AnalysisError } from '../analyze/report-schema.ts';
import { TarReader } from '../analyze/tar.ts';
import { asCodedError, CodedError, ErrorCode } from '../errors.ts';
import { readHead } from './read-head.ts';
import { type SpillConfig, SpillStore } from './spill.ts';

/**
 * Reads a dump file front to back: raw, gzip, tar (what `docker cp` emits) or tar inside gzip.
 * One pass, decompressing as it goes; nothing is written to disk and memory stays bounded.
 */

/** node:zlib inflates about twice as fast with 256 KiB output chunks as with the 16 KiB default. */
const GUNZIP_CHUNK = 256 * 1024;
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
  options: { spill?: SpillConfig } = {},
): Promise<StreamResult> {
  const info = await stat(file);
  const spill = options.spill ? new SpillStore(options.spill) : undefined;
  const dumps: DumpRecord[] = [];
  const errors: AnalysisError[] = [];
  let gzipped = false;
  let container: Container = 'raw';
  /** The time of a dump that is the whole file (not a tar member), known once its head is read. */
  let fileTime: DumpTime = { at: info.mtime, source: 'file' };
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
          // mtime: the tar member's, else the file's; time: the most truthful time known (dump-time.ts).
          const mtime = time.source === 'tar' ? time.at : info.mtime;
          const record = {
            file,
            entry,
            container,
            fileBytes: info.size,
            sizeBytes,
            mtime,
            time,
            facts,
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

  /** A member that is itself gzipped (core.1234.gz copied out of a container): inflate, then sniff. */
  const gunzipSink = (entry: string, time: DumpTime, seq: number): Sink => {
    const inflater = createGunzip({ chunkSize: GUNZIP_CHUNK });
    const inside = new Sniffer((head) => {
      if (sniff(head) === 'elf') return coreSink(entry, time, seq);
      fail(
        entry,
        new CodedError(ErrorCode.NotCore, `not a core dump: a gzip of ${describeUnknown(head)}`),
        seq,
      );
      return { push() {}, end() {} };
    });
    let error: unknown;
    inflater.on('data', (chunk: Buffer) => inside.push(chunk));
    const done = new Promise<void>((resolve) => {
      inflater.on('end', resolve);
      inflater.on('error', (e) => {
        error = e;
        resolve();
      });
    });
    return {
      push(chunk) {
        if (error !== undefined) return;
        if (!inflater.write(chunk)) {
          pending.push(Promise.race([new Promise<void>((resolve) => inflater.once('drain', resolve)), done]));
        }
      },
      end() {
        inflater.end();
        pending.push(
          done.then(() => {
            const coded = error === undefined ? undefined : asCodedError(error);
            // Cut short (the tar or the disk ended inside it): analyse what came out, as for a file.
            if (coded === undefined || /unexpected end/i.test(coded.message)) inside.end();
            else fail(entry, coded, seq);
          }),
        );
      },
    };
  };

  /** Each member is told apart by content too: a core, a gzipped core, or named for what it is. */
  const memberSink = (entry: string, time: DumpTime): Sink => {
    const seq = nextSeq++;
    return new Sniffer((head) => {
      const kind = sniff(head);
      if (kind === 'elf') return coreSink(entry, time, seq);
      if (kind === 'gzip') return gunzipSink(entry, time, seq);
      const what = kind === 'tar' ? 'a tar archive inside the tar (extract it first)' : describeUnknown(head);
      fail(entry, new CodedError(ErrorCode.NotCore, `not a core dump: ${what}`), seq);
      return { push() {}, end() {} };
    });
  };

  const tarSink = (): Sink => {
    const reader = new TarReader((header) => {
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
        } catch (error) {
          fail(null, error);
        }
      },
    };
  };

  const inner = new Sniffer((head) => {
    const kind = sniff(head);
    if (kind === 'tar') {
      container = gzipped ? 'tar+gzip' : 'tar';
      return tarSink();
    }
    if (kind === 'elf') {
      container = gzipped ? 'gzip' : 'raw';
      return coreSink(null, fileTime);
    }
    const what = kind === 'gzip' ? 'gzip inside gzip' : describeUnknown(head);
    fail(null, new CodedError(ErrorCode.NotCore, `not a core dump: ${what}`));
    return { push() {}, end() {} };
  });

  const first = await readHead(file);
  gzipped = sniff(first) === 'gzip';
  fileTime = chooseDumpTime({
    gzip: gzipped ? gzipTime(first) : undefined,
    fileName: fileNameTime(file),
    file: info.mtime,
  });
  const source = createReadStream(file, { highWaterMark: READ_CHUNK });
  let read = 0;
  const count = (chunk: Buffer) => {
    read += chunk.length;
    onProgress(read);
  };
  let stream: NodeJS.ReadableStream = source;
  if (gzipped) {
    source.on('data', (chunk) => count(chunk as Buffer));
    stream = source.pipe(createGunzip({ chunkSize: GUNZIP_CHUNK }));
    source.on('error', (error) => stream.emit('error', error));
  }
  try {
    for await (const chunk of stream) {
      if (!gzipped) count(chunk as Buffer);
      inner.push(chunk as Buffer);
      if (pending.length > 0) await settle();
    }
    inner.end();
    await settle();
  } catch (error) {
    const coded = asCodedError(error);
    if (gzipped && (coded.code === ErrorCode.MalformedGzip || /unexpected end/i.test(coded.message))) {
      // A gzip stream cut short (the disk filled while it was written): analyse what came out.
      inner.end();
      await settle();
      if (!/unexpected end/i.test(coded.message)) fail(null, coded);
    } else {
      source.destroy();
      throw coded;
    }
  }
  const inOrder = (a: object, b: object) => order.get(a)! - order.get(b)!;
  return { dumps: dumps.sort(inOrder), errors: errors.sort(inOrder) };
}
