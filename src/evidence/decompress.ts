import { Duplex, PassThrough, Readable, Transform } from 'node:stream';
import { createGunzip, createInflate, createZstdDecompress } from 'node:zlib';
import type { Compression } from '../analyze/container.ts';
import { Lz4FrameDecoder } from '../analyze/lz4.ts';
import { asCodedError, CodedError, ErrorCode } from '../errors.ts';

/**
 * One streaming decompressor per form a core is kept in: gzip (`core.gz`, apport's CoreDump field)
 * and zstd (systemd-coredump's default) from node:zlib; xz from the xz-decompress package
 * (xz-embedded compiled to WebAssembly: no native code, streaming); lz4 from lz4.ts. Every error
 * comes out coded, and a stream cut short says "unexpected end", which the reader treats as a core
 * cut short rather than a failure.
 */

/** node:zlib inflates about twice as fast with 256 KiB output chunks as with the 16 KiB default. */
const ZLIB_CHUNK = 256 * 1024;

/** The xz decoder package: loaded on first use, so everything else works where it is missing. */
const XZ_PACKAGE = 'xz-decompress';
interface XzModule {
  XzReadableStream: new (input: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>;
}
let xzModule: Promise<XzModule> | undefined;
function loadXz(): Promise<XzModule> {
  xzModule ??= (async () => {
    try {
      // A specifier in a variable: TypeScript does not insist on the package being installed.
      const loaded = (await import(XZ_PACKAGE)) as Partial<XzModule> & { default?: Partial<XzModule> };
      const XzReadableStream = loaded.XzReadableStream ?? loaded.default?.XzReadableStream;
      if (!XzReadableStream) throw new Error(`${XZ_PACKAGE} has no XzReadableStream`);
      return { XzReadableStream };
    } catch (error) {
      xzModule = undefined;
      throw new CodedError(
        ErrorCode.UnsupportedCompression,
        `xz-compressed core: reading xz needs the ${XZ_PACKAGE} package, which is not installed (${(error as Error).message})`,
        { cause: error },
      );
    }
  })();
  return xzModule;
}

/** The error a decompressor failed with, coded and named for its format. */
export function compressionError(kind: Compression | 'zlib', error: unknown): CodedError {
  if (error instanceof CodedError) return error;
  const coded = asCodedError(error);
  if (kind === 'gzip' || kind === 'zlib') return coded;
  const message = error instanceof Error ? error.message : String(error);
  // xz-embedded's XZ_BUF_ERROR (8): the input ended before the stream did.
  const cut = /unexpected end/i.test(message) || (kind === 'xz' && /error code 8\b/.test(message));
  return new CodedError(
    ErrorCode.MalformedCompression,
    cut ? `${kind} data ends unexpectedly (unexpected end of file)` : `${kind} data is corrupt: ${message}`,
    { cause: error },
  );
}

function lz4Stream(): Transform {
  let decoder: Lz4FrameDecoder;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      try {
        decoder.push(chunk);
        done();
      } catch (error) {
        done(error as Error);
      }
    },
    flush(done) {
      try {
        decoder.end();
        done();
      } catch (error) {
        done(error as Error);
      }
    },
  });
  decoder = new Lz4FrameDecoder((out) => stream.push(out));
  return stream;
}

function xzStream(): Duplex {
  const input = new PassThrough();
  async function* decompressed(): AsyncGenerator<Uint8Array> {
    const { XzReadableStream } = await loadXz();
    const web = Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>;
    const reader = new XzReadableStream(web).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }
  return Duplex.from({ writable: input, readable: Readable.from(decompressed(), { objectMode: false }) });
}

/**
 * A Duplex: compressed bytes in, the core's bytes out. Errors pass through compressionError.
 * 'zlib' is only for old apport reports, whose binary fields were zlib streams without a gzip header.
 */
export function decompressor(kind: Compression | 'zlib'): Duplex {
  if (kind === 'gzip') return createGunzip({ chunkSize: ZLIB_CHUNK });
  if (kind === 'zlib') return createInflate({ chunkSize: ZLIB_CHUNK });
  if (kind === 'zstd') return createZstdDecompress({ chunkSize: ZLIB_CHUNK });
  if (kind === 'lz4') return lz4Stream();
  return xzStream();
}
