/**
 * Follows the structure of a zstd stream (RFC 8878: frames, their headers, their blocks' headers)
 * without decoding it, so a pull that keeps the host's compressed stream as it is can still say
 * whether the stream ended whole and about how many bytes it holds.
 *
 * Written here rather than decoding with node:zlib: decoding is what keeping the stream compressed
 * saves (on two cores it was a fifth of the whole incident's CPU), and a frame's structure is a
 * few headers a block. No library walks it without decoding.
 *
 * The content size is exact for raw and RLE blocks and for a frame that states it; a compressed
 * block regenerates at most Block_Maximum_Size (min(window, 128 KiB)), which is what the zstd
 * tool's streaming compressor puts in every block but a frame's last: `approxContentBytes` counts
 * that, for a progress line, never for a decision.
 */

const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const BLOCK_MAX = 128 * 1024;

type State =
  | { at: 'magic' }
  | { at: 'descriptor' }
  | { at: 'header'; left: number; flags: number }
  | { at: 'block-header' }
  | { at: 'skip'; left: number; next: State }
  | { at: 'skippable-size' };

export class ZstdFrameWalker {
  /** Bytes of content the stream holds so far (compressed blocks counted at their maximum). */
  approxContentBytes = 0;
  frames = 0;
  private state: State = { at: 'magic' };
  /** A header being gathered across chunks. */
  private pending: number[] = [];
  private checksum = false;
  private blockMax = BLOCK_MAX;
  private failure: string | undefined;

  /** Follows `chunk`; throws (and stays failed) on bytes that are not a zstd stream. */
  push(chunk: Uint8Array): void {
    if (this.failure) throw new Error(this.failure);
    let i = 0;
    while (i < chunk.length) {
      const s = this.state;
      if (s.at === 'skip') {
        const n = Math.min(s.left, chunk.length - i);
        i += n;
        s.left -= n;
        if (s.left === 0) this.state = s.next;
        continue;
      }
      this.pending.push(chunk[i++]!);
      this.step();
    }
  }

  /** Whether the stream stopped at the end of a frame (after at least one): it is whole. */
  get whole(): boolean {
    return !this.failure && this.frames > 0 && this.state.at === 'magic' && this.pending.length === 0;
  }

  private fail(why: string): never {
    this.failure = `not a whole zstd stream: ${why}`;
    throw new Error(this.failure);
  }

  /** Acts on the gathered header bytes once there are enough for the current state. */
  private step(): void {
    const p = this.pending;
    const s = this.state;
    if (s.at === 'magic') {
      if (p.length < 4) return;
      const magic = (p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) >>> 0;
      this.pending = [];
      if (magic === FRAME_MAGIC) this.state = { at: 'descriptor' };
      else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) this.state = { at: 'skippable-size' };
      else this.fail(`frame ${this.frames + 1} starts ${magic.toString(16)}`);
    } else if (s.at === 'skippable-size') {
      if (p.length < 4) return;
      const size = (p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) >>> 0;
      this.pending = [];
      this.state = size === 0 ? { at: 'magic' } : { at: 'skip', left: size, next: { at: 'magic' } };
    } else if (s.at === 'descriptor') {
      const d = p[0]!;
      this.pending = [];
      if (d & 0x08) this.fail('reserved bit set in a frame header');
      const single = (d >> 5) & 1;
      const fcsFlag = d >> 6;
      const fcs = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag]!;
      const dict = [0, 1, 2, 4][d & 3]!;
      this.checksum = (d & 0x04) !== 0;
      const left = (single ? 0 : 1) + dict + fcs;
      // At least one byte follows: the window descriptor, or a single segment's content size.
      this.state = { at: 'header', left, flags: d };
    } else if (s.at === 'header') {
      if (p.length < s.left) return;
      this.endHeader();
    } else if (s.at === 'block-header') {
      if (p.length < 3) return;
      const h = p[0]! | (p[1]! << 8) | (p[2]! << 16);
      this.pending = [];
      const last = h & 1;
      const type = (h >> 1) & 3;
      const size = h >>> 3;
      if (type === 3) this.fail('a reserved block type');
      if (size > this.blockMax) this.fail(`a block of ${size} bytes, above ${this.blockMax}`);
      const stored = type === 1 ? 1 : size;
      this.approxContentBytes += type === 2 ? this.blockMax : size;
      // After a frame's last block: its checksum (4 bytes) when it has one, then the next frame.
      const after: State = !last
        ? { at: 'block-header' }
        : this.checksum
          ? { at: 'skip', left: 4, next: { at: 'magic' } }
          : { at: 'magic' };
      if (last) this.frames++;
      this.state = stored === 0 ? after : { at: 'skip', left: stored, next: after };
    }
  }

  private endHeader(): void {
    const p = this.pending;
    const s = this.state as { at: 'header'; flags: number };
    const single = (s.flags >> 5) & 1;
    let window: number;
    if (single) {
      // A single segment's window is its content size, the header's last 1, 2, 4 or 8 bytes.
      const fcsBytes = s.flags >> 6 === 0 ? 1 : [0, 2, 4, 8][s.flags >> 6]!;
      window = 0;
      for (let k = fcsBytes - 1; k >= 0; k--) window = window * 256 + p[p.length - fcsBytes + k]!;
      if (fcsBytes === 2) window += 256;
    } else {
      const w = p[0]!;
      const base = 2 ** (10 + (w >> 3));
      window = base + (base / 8) * (w & 7);
    }
    this.pending = [];
    this.blockMax = Math.min(window, BLOCK_MAX);
    this.state = { at: 'block-header' };
  }
}
