import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, statfs, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { finished, PassThrough, type Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { asCodedError, CodedError, ErrorCode } from '../errors.ts';
import { type RemoteHost, type RemoteStream, shellQuote } from './transport.ts';
import { ZstdFrameWalker } from './zstd-frames.ts';

/**
 * Brings a file home from a host whose disk is full, the way an SRE would by hand:
 * `ssh host "docker cp <container>:<path> - | gzip -1" | gunzip > file` (zstd where the host has
 * it, podman where it has no docker). Nothing is written on the host; the bytes are compressed
 * there (the link is the bottleneck), decompressed here as they arrive, hashed, and written to
 * `<dest>.part`, which becomes `<dest>` only when the remote command succeeded and the compressed
 * stream ended whole. A dropped connection leaves no file that looks whole.
 *
 * With `keep: 'compressed'` a zstd stream is kept as it came (the bot's job does this): decoding
 * and hashing gigabytes here cost more CPU than the whole pull otherwise (on two cores, next to
 * the analysis that decodes them anyway), and the evidence takes a tenth of the disk. Its frames
 * are followed to know it ended whole (zstd-frames.ts); its content is decoded and hashed too
 * only when asked (`hashContent`: a file small enough for the host to check by hash before
 * deleting it, see free-plan.ts).
 */

export interface PullSource {
  /** A container id or name: the file is read with `docker cp` (a tar stream, which the analyzer reads). */
  container?: string;
  path: string;
}

export interface PullResult {
  localPath: string;
  /** Bytes written: the content, or the zstd stream when it was kept compressed. */
  bytes: number;
  /** How the file is kept: its content, or the host's zstd stream of it (`.zst`). */
  keptAs: 'content' | 'compressed';
  /**
   * The content as the host has it (the file, or the tar `docker cp` makes of it): its bytes and
   * sha256, or null when it was kept compressed and not decoded here (`hashContent` off).
   */
  contentBytes: number | null;
  contentSha256: string | null;
  /** Bytes that crossed the network (compressed). */
  transferredBytes: number;
  /** How the host compressed it; `stored` when the file was kept compressed and sent as it is. */
  compression: 'gzip' | 'zstd' | 'stored';
  /** Of the file as kept here. */
  sha256: string;
  durationMs: number;
}

/**
 * How the host compresses: zstd -1 when the host has it (faster than gzip -1 at a similar ratio,
 * and gzip on the host is the bottleneck of a pull), else gzip -1. `auto` lets the host decide;
 * the bot tells which from the stream's first bytes.
 */
export type Compression = 'auto' | 'gzip' | 'zstd';

export interface PullOptions {
  timeoutMs?: number;
  compression?: Compression;
  /** Stop when the local filesystem would have less free than this. Default 1 GiB. */
  reserveBytes?: number;
  /** Content bytes so far (about: a kept zstd stream's are counted from its block headers). */
  onProgress?: (bytes: number) => void;
  /** Keep a zstd stream as it came (needs `compression: 'zstd'`); default: decompress it. */
  keep?: 'content' | 'compressed';
  /** When kept compressed, decode it here too, for its content's size and sha256. */
  hashContent?: boolean;
}

/**
 * The remote command. A POSIX shell has no pipefail, so `docker cp`'s own status is written to
 * stderr (`nightshift-status:N`) for the bot to read: a failed copy piped into gzip would
 * otherwise look like a successful, empty transfer.
 */
export function pullCommand(source: PullSource, compression: Compression = 'auto'): string {
  const compress = sentAsStored(source)
    ? 'c=cat'
    : compression === 'gzip'
      ? 'c="gzip -1"'
      : compression === 'zstd'
        ? 'c="zstd -1 -q -c"'
        : 'c="gzip -1"; if command -v zstd >/dev/null 2>&1; then c="zstd -1 -q -c"; fi';
  if (!source.container) {
    // A regular file, opened without following a symlink (O_NOFOLLOW): a core swapped for a link
    // to /etc/shadow between the collection and the pull is refused, not copied.
    const path = shellQuote(source.path);
    return `${compress}; { { if [ -f ${path} ] && [ ! -L ${path} ]; then dd if=${path} iflag=nofollow bs=1M status=none; else echo "not a regular file (a link, a directory, or gone)" >&2; false; fi; echo "nightshift-status:$?" >&3; } | $c; } 3>&2`;
  }
  // Docker, or Podman where there is no Docker: the same `cp <id>:<path> -` tar stream.
  const engine = 'd=$(command -v docker || command -v podman || echo docker)';
  return `${compress}; ${engine}; { { "$d" cp ${shellQuote(`${source.container}:${source.path}`)} -; echo "nightshift-status:$?" >&3; } | $c; } 3>&2`;
}

/**
 * A file the host keeps compressed already: systemd-coredump's store (`core.<comm>.….zst`, `.xz`,
 * `.lz4`), a gzip'd core, apport's `.crash` report (its core is base64 of gzip). Compressing it
 * again would cost the host's CPU for nothing, so it is sent as it is stored and kept so; the
 * analyzer reads those forms (told apart by content). A container's file comes as `docker cp`'s
 * tar, which is compressed on the way as always.
 */
export function sentAsStored(source: PullSource): boolean {
  return !source.container && /\.(zst|xz|lz4|gz|crash)$/.test(source.path);
}

/** gzip (1f 8b) or zstd (28 b5 2f fd), told apart by the stream's first bytes. */
function decompressor(first: Buffer): Transform {
  if (first[0] === 0x1f && first[1] === 0x8b) return createGunzip({ chunkSize: 256 * 1024 });
  if (first.length >= 4 && first.readUInt32LE(0) === 0xfd2fb528)
    return createZstdDecompress({ chunkSize: 256 * 1024 });
  throw new Error(
    `the host sent neither gzip nor zstd data (starts ${first.subarray(0, 4).toString('hex')})`,
  );
}

/** The stream's first `n` bytes (fewer if it ends sooner), put back so the pipeline reads them too. */
function peek(stream: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const finish = (error?: Error) => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', finish);
      if (error) return reject(error);
      if (head.length > 0) stream.unshift(head);
      resolve(head);
    };
    const onReadable = () => {
      for (let chunk: Buffer | null = stream.read(); chunk !== null; chunk = stream.read()) {
        head = Buffer.concat([head, chunk]);
        if (head.length >= n) return finish();
      }
    };
    const onEnd = () => finish();
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', finish);
  });
}

const STATUS = /nightshift-status:(\d+)\s*/;

/** The copy's status and stderr without the marker; null when the marker is missing (host paths). */
function copyStatus(stderr: string): { status: number | null; message: string } {
  const m = STATUS.exec(stderr);
  return { status: m ? Number(m[1]) : null, message: stderr.replace(STATUS, '').trim() };
}

/** How the remote command ended. */
type Ending = Awaited<RemoteStream['done']>;

/**
 * What failed on the host, if anything: the copy when its status says so, else the remote
 * command, by its exit status or by the signal that killed it (the OOM killer, an operator),
 * which is not a dropped connection and is not reported as one.
 */
function failure({ exitCode, signal, stderr }: Ending): string | undefined {
  const copy = copyStatus(stderr);
  const message = copy.message.slice(0, 300);
  if (copy.status !== null && copy.status !== 0)
    return `the remote command failed (${copy.status}): ${message}`;
  if (signal !== undefined)
    return `the remote command was killed by ${signal}${message ? `: ${message}` : ''}`;
  if (exitCode !== null && exitCode !== 0) return `the remote command failed (${exitCode}): ${message}`;
  return undefined;
}

export async function pullFile(
  host: RemoteHost,
  source: PullSource,
  dest: string,
  options: PullOptions = {},
): Promise<PullResult> {
  const reserve = options.reserveBytes ?? 1024 ** 3;
  const keepCompressed = options.keep === 'compressed' && !sentAsStored(source);
  if (keepCompressed && options.compression !== 'zstd')
    throw new CodedError(
      ErrorCode.SshFailed,
      'a pull is kept compressed only as zstd: ask the host for zstd',
    );
  await mkdir(dirname(dest), { recursive: true });
  const free = async () => {
    const fs = await statfs(dirname(dest));
    return fs.bavail * fs.bsize;
  };
  if ((await free()) < reserve) {
    throw new CodedError(
      ErrorCode.SshFailed,
      `not pulling ${source.path}: less than ${reserve} bytes free on the bot's disk`,
    );
  }
  const started = performance.now();
  const remote = await host
    .stream({ command: pullCommand(source, options.compression), timeoutMs: options.timeoutMs ?? 3_600_000 })
    .catch((error: unknown) => {
      // The connection or the channel could not be opened: the caller may try once more.
      const coded = asCodedError(error);
      throw coded.code === ErrorCode.SshFailed
        ? new CodedError(ErrorCode.ConnectionLost, coded.message, { cause: error })
        : coded;
    });
  const part = `${dest}.part`;
  const frames = keepCompressed ? new ZstdFrameWalker() : undefined;
  const meter = transferMeter(free, reserve, options.onProgress, frames);
  const content = keepCompressed && options.hashContent ? new ContentHash() : undefined;
  let usedZstd: boolean;
  try {
    usedZstd = await receive(remote, source, part, meter, frames && { frames, content });
  } catch (error) {
    content?.abort();
    await unlink(part).catch(() => {});
    throw await pullFailure(error, remote, meter, { host: host.name, source, reserve });
  }
  await rename(part, dest);
  const sha256 = meter.hash.digest('hex');
  return {
    localPath: dest,
    bytes: meter.bytes,
    keptAs: keepCompressed ? 'compressed' : 'content',
    contentBytes: keepCompressed ? (content?.bytes ?? null) : meter.bytes,
    contentSha256: keepCompressed ? (content?.hash.digest('hex') ?? null) : sha256,
    transferredBytes: meter.transferred,
    compression: sentAsStored(source) ? 'stored' : usedZstd ? 'zstd' : 'gzip',
    sha256,
    durationMs: Math.round(performance.now() - started),
  };
}

/**
 * What a transfer counts as it goes: the bytes that crossed the network (`counter`, before
 * decompressing), and the bytes written, hashed and reported (`tee`, after), which also stops the
 * transfer when the bot's disk would drop below `reserve` free (checked every 64 MiB).
 */
interface TransferMeter {
  transferred: number;
  bytes: number;
  outOfSpace: boolean;
  hash: Hash;
  counter: Transform;
  tee: Transform;
}

function transferMeter(
  free: () => Promise<number>,
  reserve: number,
  onProgress: ((bytes: number) => void) | undefined,
  frames: ZstdFrameWalker | undefined,
): TransferMeter {
  let checked = 0;
  const meter: TransferMeter = {
    transferred: 0,
    bytes: 0,
    outOfSpace: false,
    hash: createHash('sha256'),
    counter: new Transform({
      transform(chunk: Buffer, _enc, done) {
        meter.transferred += chunk.length;
        done(null, chunk);
      },
    }),
    tee: new Transform({
      async transform(chunk: Buffer, _enc, done) {
        meter.bytes += chunk.length;
        meter.hash.update(chunk);
        onProgress?.(frames ? frames.approxContentBytes : meter.bytes);
        if (meter.bytes - checked >= 64 * 1024 * 1024) {
          checked = meter.bytes;
          if ((await free()) < reserve) {
            meter.outOfSpace = true;
            return done(new Error('the bot is running out of disk space'));
          }
        }
        done(null, chunk);
      },
    }),
  };
  return meter;
}

/** A kept zstd stream's content, decoded beside the copy for its size and sha256 alone. */
class ContentHash {
  bytes = 0;
  readonly hash = createHash('sha256');
  private readonly decoder = createZstdDecompress({ chunkSize: 256 * 1024 });
  private readonly done: Promise<void>;
  constructor() {
    this.done = pipeline(
      this.decoder,
      new Writable({
        write: (chunk: Buffer, _enc, next) => {
          this.bytes += chunk.length;
          this.hash.update(chunk);
          next();
        },
      }),
    );
    // Awaited in end(); a failure before then surfaces there (and through write's wait).
    this.done.catch(() => {});
  }
  async write(chunk: Buffer): Promise<void> {
    if (!this.decoder.write(chunk)) await Promise.race([once(this.decoder, 'drain'), this.done]);
  }
  async end(): Promise<void> {
    this.decoder.end();
    await this.done;
  }
  /** Frees the decoder of a transfer that failed. */
  abort(): void {
    this.decoder.destroy();
  }
}

/**
 * Receives the remote stream into `part`, decompressing it as it arrives (or, `kept`, following
 * its zstd frames and keeping it as it came), and checks how the remote command ended. Returns
 * whether the host compressed with zstd.
 */
async function receive(
  remote: RemoteStream,
  source: PullSource,
  part: string,
  meter: TransferMeter,
  kept: { frames: ZstdFrameWalker; content: ContentHash | undefined } | undefined,
): Promise<boolean> {
  const stdout = remote.stdout as Readable;
  const head = await peek(stdout, 4);
  if (head.length === 0) throw new Error('the host sent nothing');
  const usedZstd = head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528;
  if (kept && !usedZstd) throw new Error(`the host sent no zstd data (starts ${head.toString('hex')})`);
  // The SSH channel feeds the pipeline through a pipe rather than being part of it: a local
  // failure (the bot's disk filling, corrupt data) must end the transfer at once, and the
  // pipeline would otherwise wait for the channel to close, which an unread remote never does.
  const feed = new PassThrough({ highWaterMark: 1024 * 1024 });
  stdout.pipe(feed);
  finished(stdout, { writable: false }, (error) => {
    if (error)
      feed.destroy(new CodedError(ErrorCode.ConnectionLost, 'the connection dropped', { cause: error }));
  });
  try {
    const unpack = kept
      ? keptStream(kept.frames, kept.content)
      : sentAsStored(source)
        ? new PassThrough()
        : decompressor(head);
    await pipeline(feed, meter.counter, unpack, meter.tee, createWriteStream(part));
  } catch (error) {
    stdout.unpipe(feed);
    remote.abort();
    throw error;
  }
  const ending = await remote.done;
  const failed = failure(ending);
  if (failed) throw new Error(failed);
  if (ending.exitCode === null) throw new CodedError(ErrorCode.ConnectionLost, 'the connection dropped');
  return usedZstd;
}

/** Passes a zstd stream on as it is, following its frames (and decoding it beside, for `content`). */
function keptStream(frames: ZstdFrameWalker, content: ContentHash | undefined): Transform {
  return new Transform({
    async transform(chunk: Buffer, _enc, done) {
      try {
        frames.push(chunk);
        await content?.write(chunk);
        done(null, chunk);
      } catch (error) {
        done(error as Error);
      }
    },
    async flush(done) {
      try {
        // Cut at a frame's end by the host would look whole to the exit status alone.
        if (!frames.whole) throw new Error('unexpected end of file: the zstd stream stopped inside a frame');
        await content?.end();
        done();
      } catch (error) {
        done(error as Error);
      }
    },
  });
}

/**
 * The error a failed transfer ends with: what failed on the host if it said (waiting a second for
 * its ending), else the bot's disk, else the error itself; coded ConnectionLost only when the
 * connection went away mid-transfer with nothing else wrong, which one retry is worth.
 */
async function pullFailure(
  error: unknown,
  remote: RemoteStream,
  meter: TransferMeter,
  at: { host: string; source: PullSource; reserve: number },
): Promise<CodedError> {
  const ending = await Promise.race([
    remote.done,
    new Promise<Ending>((r) => setTimeout(() => r({ exitCode: null, stderr: '' }), 1000)),
  ]);
  const failed = failure(ending);
  const reason = meter.outOfSpace
    ? `the bot's disk would drop below ${at.reserve} bytes free`
    : (failed ?? (error as Error).message);
  // A dropped connection also shows as a compressed stream that ended short (Node's zlib says
  // "unexpected end of file", code Z_BUF_ERROR) with no exit status from the host.
  const cut =
    (error as NodeJS.ErrnoException).code === 'Z_BUF_ERROR' || /unexpected end of file/.test(String(error));
  const lost =
    !meter.outOfSpace &&
    failed === undefined &&
    (asCodedError(error).code === ErrorCode.ConnectionLost || (cut && ending.exitCode === null));
  const { source } = at;
  return new CodedError(
    lost ? ErrorCode.ConnectionLost : ErrorCode.SshFailed,
    `pulling ${source.container ? `${source.container}:` : ''}${source.path} from ${at.host} failed after ${meter.transferred} bytes: ${reason}; nothing was kept`,
    { cause: error },
  );
}
