import { CodedError, ErrorCode } from '../errors.ts';

/**
 * A streaming decoder for the LZ4 frame format (what the `lz4` tool and systemd-coredump write),
 * bytes in with `push`, decompressed bytes out through `emit` as each block completes: memory is
 * one block (at most 4 MiB) plus the 64 KiB window linked blocks refer back to.
 *
 * Written here rather than taken from npm: the packages there either bind native code (lz4, which
 * needs a compiler and nan; lz4-napi) or decode a whole buffer at once (lz4js, lz4-wasm-nodejs),
 * and a core is read as a stream. The format (lz4_Frame_format.md, lz4_Block_format.md) is small.
 * Checksums (xxHash32) are not verified: a corrupt block still fails on its structure, and the
 * analyzer reports what it read of a damaged core anyway.
 */

const FRAME_MAGIC = 0x184d2204;
const LEGACY_MAGIC = 0x184c2102;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const WINDOW = 64 * 1024;
const BLOCK_SIZES: Record<number, number> = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 };

const malformed = (message: string) =>
  new CodedError(ErrorCode.MalformedCompression, `lz4 data is corrupt: ${message}`);

/**
 * Input bytes kept as a list of chunks, so a 4 MiB block arriving in 64 KiB reads is copied once.
 * Chunks are consumed by moving an index (compacted now and then), never by shifting the array:
 * a block that arrives a byte at a time must not cost time quadratic in its size.
 */
const EMPTY = new Uint8Array(0);

class ByteQueue {
  private chunks: Uint8Array[] = [];
  private index = 0;
  private first = 0;
  length = 0;
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }
  /** Copies the next `n` bytes into `out` (the caller checked `length`); consumes them if asked. */
  private copy(n: number, consume: boolean): Uint8Array {
    const head = this.chunks[this.index]!;
    if (head.length - this.first >= n) {
      const out = head.subarray(this.first, this.first + n);
      if (consume) this.advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    let index = this.index;
    let first = this.first;
    while (filled < n) {
      const chunk = this.chunks[index]!;
      const take = Math.min(n - filled, chunk.length - first);
      out.set(chunk.subarray(first, first + take), filled);
      filled += take;
      first += take;
      if (first === chunk.length) {
        index++;
        first = 0;
      }
    }
    if (consume) this.advance(n);
    return out;
  }
  /** Removes and returns the next `n` bytes (the caller checked `length`). */
  take(n: number): Uint8Array {
    return n === 0 ? new Uint8Array(0) : this.copy(n, true);
  }
  /** The next `n` bytes without removing them (the caller checked `length`). */
  peek(n: number): Uint8Array {
    return this.copy(n, false);
  }
  skip(n: number): number {
    const skipped = Math.min(n, this.length);
    this.advance(skipped);
    return skipped;
  }
  private advance(n: number): void {
    let left = n;
    this.length -= n;
    while (left > 0) {
      const chunk = this.chunks[this.index]!;
      const take = Math.min(left, chunk.length - this.first);
      this.first += take;
      left -= take;
      if (this.first === chunk.length) {
        // Let go of it now: the array is compacted only now and then.
        this.chunks[this.index++] = EMPTY;
        this.first = 0;
      }
    }
    if (this.index > 1024 && this.index * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.index);
      this.index = 0;
    }
  }
}

const u32 = (b: Uint8Array, at: number) =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

type State =
  | { at: 'magic' }
  | { at: 'skip'; left: number }
  | { at: 'descriptor' }
  | { at: 'block' }
  | { at: 'data'; size: number; stored: boolean }
  | { at: 'trailer' };

export class Lz4FrameDecoder {
  private readonly emit: (chunk: Uint8Array) => void;
  private readonly input = new ByteQueue();
  private state: State = { at: 'magic' };
  private frames = 0;
  private blockChecksum = false;
  private contentChecksum = false;
  private blockMax = 0;
  /** The last WINDOW bytes of output, then room for one block. */
  private out = new Uint8Array(0);
  private history = 0;
  private emitted = 0;

  constructor(emit: (chunk: Uint8Array) => void) {
    this.emit = emit;
  }

  push(chunk: Uint8Array): void {
    this.input.push(chunk);
    for (;;) {
      const s = this.state;
      if (s.at === 'magic') {
        if (this.input.length < 4) return;
        const magic = u32(this.input.peek(4), 0);
        if (magic === FRAME_MAGIC) {
          this.input.take(4);
          this.state = { at: 'descriptor' };
        } else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          if (this.input.length < 8) return;
          const head = this.input.take(8);
          this.state = { at: 'skip', left: u32(head, 4) };
        } else if (magic === LEGACY_MAGIC) {
          throw new CodedError(
            ErrorCode.UnsupportedCompression,
            'lz4 legacy format (lz4 -l) is not supported: recompress it with lz4 without -l',
          );
        } else if (this.frames > 0) {
          throw malformed(`unexpected bytes after frame ${this.frames}`);
        } else {
          throw malformed('no LZ4 frame magic');
        }
      } else if (s.at === 'skip') {
        s.left -= this.input.skip(s.left);
        if (s.left > 0) return;
        this.state = { at: 'magic' };
      } else if (s.at === 'descriptor') {
        if (this.input.length < 2) return;
        const descriptor = this.input.peek(2);
        const flg = descriptor[0]!;
        const bd = descriptor[1]!;
        if (flg >> 6 !== 1) throw malformed(`frame version ${flg >> 6}`);
        const length = 2 + (flg & 0x08 ? 8 : 0) + (flg & 0x01 ? 4 : 0) + 1;
        if (this.input.length < length) return;
        this.input.take(length);
        this.blockMax = BLOCK_SIZES[(bd >> 4) & 7] ?? 0;
        if (this.blockMax === 0) throw malformed(`block size code ${(bd >> 4) & 7}`);
        this.blockChecksum = (flg & 0x10) !== 0;
        this.contentChecksum = (flg & 0x04) !== 0;
        if (this.out.length < WINDOW + this.blockMax) this.out = new Uint8Array(WINDOW + this.blockMax);
        this.history = 0;
        this.frames++;
        this.state = { at: 'block' };
      } else if (s.at === 'block') {
        if (this.input.length < 4) return;
        const word = u32(this.input.take(4), 0);
        if (word === 0) {
          this.state = { at: 'trailer' };
          continue;
        }
        const size = word & 0x7fffffff;
        if (size > this.blockMax) throw malformed(`block of ${size} bytes in a frame of ${this.blockMax}`);
        this.state = { at: 'data', size, stored: (word & 0x80000000) !== 0 };
      } else if (s.at === 'data') {
        // Waits for the whole block (checked against the frame's block size above).
        if (this.input.length < s.size + (this.blockChecksum ? 4 : 0)) return;
        const data = this.input.take(s.size);
        if (this.blockChecksum) this.input.take(4);
        this.block(data, s.stored);
        this.state = { at: 'block' };
      } else {
        const need = this.contentChecksum ? 4 : 0;
        if (this.input.length < need) return;
        this.input.take(need);
        this.state = { at: 'magic' };
      }
    }
  }

  /**
   * Call at the end of the input. A frame cut short (the disk filled while it was written) gives
   * what its last, partial block still decodes to, as gunzip does for a cut gzip; the core reader
   * then reports the core as truncated. Throws when not one byte could be decoded.
   */
  end(): void {
    const s = this.state;
    if (s.at === 'data' && this.input.length > 0) {
      this.block(this.input.take(Math.min(s.size, this.input.length)), s.stored, true);
    }
    const complete = this.state.at === 'magic' && this.input.length === 0;
    if (complete || this.emitted > 0) return;
    if (this.frames === 0 && this.state.at === 'magic') throw malformed('no LZ4 frame');
    throw new CodedError(
      ErrorCode.MalformedCompression,
      `lz4 data ends before its first block could be read (${this.frames} frame(s) begun)`,
    );
  }

  private block(data: Uint8Array, stored: boolean, partial = false): void {
    const out = this.out;
    const start = this.history;
    let pos = start;
    if (stored) {
      out.set(data, pos);
      pos += data.length;
    } else {
      pos = decodeBlock(data, out, pos, partial);
    }
    this.emitted += pos - start;
    if (pos > start) this.emit(out.slice(start, pos));
    // Keep the last WINDOW bytes at the front for the next (possibly linked) block.
    const keep = Math.min(WINDOW, pos);
    out.copyWithin(0, pos - keep, pos);
    this.history = keep;
  }
}

/**
 * Decodes one LZ4 block into `out` at `pos`; returns the new end. Matches may reach back into out.
 * A `partial` block (the input was cut inside it) stops at its first incomplete sequence.
 */
function decodeBlock(src: Uint8Array, out: Uint8Array, start: number, partial: boolean): number {
  let pos = start;
  let i = 0;
  const n = src.length;
  const cut = (what: string) => {
    if (partial) return true;
    throw malformed(what);
  };
  for (;;) {
    if (i >= n && cut('block ends inside a sequence')) return pos;
    const token = src[i++]!;
    let literals = token >> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (i >= n && cut('block ends inside a literal length')) return pos;
        b = src[i++]!;
        literals += b;
      } while (b === 255);
    }
    if (pos + literals > out.length) throw malformed('literals run past the block size');
    if (i + literals > n) {
      cut('literals run past the block');
      out.set(src.subarray(i, n), pos);
      return pos + (n - i);
    }
    out.set(src.subarray(i, i + literals), pos);
    i += literals;
    pos += literals;
    if (i === n) return pos; // the last sequence has literals only
    if (i + 2 > n && cut('block ends inside a match offset')) return pos;
    const offset = src[i]! | (src[i + 1]! << 8);
    i += 2;
    if (offset === 0 || offset > pos) throw malformed(`match offset ${offset} reaches before the data`);
    let length = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (i >= n && cut('block ends inside a match length')) return pos;
        b = src[i++]!;
        length += b;
      } while (b === 255);
    }
    if (pos + length > out.length) throw malformed('match runs past the block size');
    let from = pos - offset;
    if (offset >= length) {
      out.copyWithin(pos, from, from + length);
      pos += length;
    } else {
      // Overlapping copy: the match repeats bytes it is itself writing.
      for (let k = 0; k < length; k++) out[pos++] = out[from++]!;
    }
  }
}
