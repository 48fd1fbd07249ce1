// Buffer#slice returns a view, not a copy: bytes kept past a push are copied with new Uint8Array(...).
/**
 * Finds printable strings in a stream of bytes, the way `strings -n 8` and `strings -el` would, but
 * fast enough for gigabyte cores in JavaScript (printable here is 0x20-0x7e; a tab ends a string): it looks at aligned 32-bit words and only walks byte
 * by byte around a word that is entirely printable (ASCII) or printable-NUL pairs (UTF-16LE). Any
 * ASCII run of 7 or more bytes contains such an aligned word, so no string is missed, and
 * on binary data (random heap, zero pages) the loop does one word test per four bytes.
 *
 * Runs that straddle chunk boundaries are carried over and emitted whole, so the result does not
 * depend on how the input was chunked.
 */

import { EVIDENCE_TRIGGERS, REQUEST_TRIGGER, SQL_TRIGGERS, URL_TRIGGER } from './extract.ts';
import {
  REC_ASCII,
  REC_ASCII_OPEN,
  REC_NO_SECRET,
  REC_PLAIN,
  REC_UTF16,
  REC_VALUE,
  REC_VALUE_STRING,
  VALUE_REQUEST,
  VALUE_SQL,
  VALUE_URL,
  WASM_INPUT_CAPACITY,
  type WasmScanner,
  wasmScanner,
} from './wasm/strings-wasm.ts';

export type StringEncoding = 'ascii' | 'utf16le';

/** Minimum length of an ASCII run that is reported; URLs ("http://x") are at least this long. */
export const MIN_ASCII = 8;
/** Minimum length, in characters, of a UTF-16LE run. */
export const MIN_UTF16 = 6;
/** Longer runs are cut: a megabyte of text is already far past anything we extract. */
export const MAX_RUN = 1 << 20;

/**
 * `triggers`, when the WebAssembly scanner found the string: which of EVIDENCE_TRIGGERS it holds
 * (bit i for trigger i, ENV_TRIGGER in extract.ts for a NAME= start), so the extractors need not look again.
 * `secretFree`: the scanner found none of the markers redact.ts's MAYBE_SECRET looks for in it, so
 * no value taken from it can hold a secret (see REC_NO_SECRET in strings.c).
 */
export type StringSink = (
  text: string,
  offset: number,
  encoding: StringEncoding,
  triggers?: number,
  secretFree?: boolean,
) => void;

/** The kinds of value the WebAssembly scanner can find itself (see url_fast, request_fast in strings.c). */
export type ByteValueKind = 'url' | 'request' | 'sql';

/**
 * Where the WebAssembly scanner may hand URLs and request lines over as bytes, without a string
 * made for them: for a string whose only evidence is its URLs (or requests), `string()` with its
 * offset, then, when that said yes, `value()` for each one extract.ts would find in it, in order.
 * Asked before each chunk which kinds it takes now (the collector takes a kind only once its values
 * go straight to its overflow table).
 */
export interface ValueBytesSink {
  accepting(kind: ByteValueKind): boolean;
  /** A string of such values at this offset: false leaves its values out (it is not this sink's). */
  string(offset: number): boolean;
  value(kind: ByteValueKind, bytes: Uint8Array, start: number, end: number): void;
}

/** By strings.c's VALUE_* code. */
const BYTE_VALUE_KINDS: ByteValueKind[] = [];
BYTE_VALUE_KINDS[VALUE_URL] = 'url';
BYTE_VALUE_KINDS[VALUE_REQUEST] = 'request';
BYTE_VALUE_KINDS[VALUE_SQL] = 'sql';

/** What the scanner says when it could not tell the triggers apart. */
const ALL_TRIGGERS = 0xffffff;

const PRINTABLE = new Uint8Array(256);
for (let c = 0x20; c < 0x7f; c++) PRINTABLE[c] = 1;

/** Bytes of an environment variable's NAME after its first letter: A-Z, 0-9, _. */
const NAME_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_') NAME_BYTE[c.charCodeAt(0)] = 1;

/** For each byte value, the triggers that start with it (strings.c looks them up by two bytes). */
const TRIGGERS_BY_FIRST: number[][][] = Array.from({ length: 256 }, () => []);
for (const trigger of EVIDENCE_TRIGGERS) {
  const bytes = [...Buffer.from(trigger, 'latin1')];
  TRIGGERS_BY_FIRST[bytes[0]!]!.push(bytes);
}

/**
 * mayHoldEvidence (extract.ts) on bytes, every `step`-th byte of [start, end) (2 for UTF-16LE), so
 * a string that can yield no evidence is skipped before it is made.
 */
function triggered(bytes: Uint8Array, start: number, end: number, step: number): boolean {
  const first = bytes[start]!;
  if (first >= 0x41 && first <= 0x5a) {
    let i = start + step;
    while (i < end && NAME_BYTE[bytes[i]!] === 1) i += step;
    if (i < end && bytes[i] === 0x3d) return true;
  }
  for (let i = start; i < end; i += step) {
    const c = bytes[i]!;
    for (const trigger of TRIGGERS_BY_FIRST[c]!) {
      if (i + (trigger.length - 1) * step >= end) continue;
      let k = 1;
      while (k < trigger.length && bytes[i + k * step] === trigger[k]) k++;
      if (k === trigger.length) return true;
    }
  }
  return false;
}

const isPrint = (c: number | undefined) => c !== undefined && PRINTABLE[c] === 1;

function latin1(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

function utf16Ascii(bytes: Uint8Array, start: number, end: number): string {
  const codes: number[] = [];
  for (let i = start; i + 1 < end; i += 2) codes.push(bytes[i]!);
  let text = '';
  for (let i = 0; i < codes.length; i += 8192) text += String.fromCharCode(...codes.slice(i, i + 8192));
  return text;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const NO_WORDS = new Int32Array(0);

/**
 * The hot loop, kept tight so it compiles to a few instructions a word. It returns the next word
 * that is entirely printable ASCII, or that looks like UTF-16LE ASCII (two printable-or-zero bytes
 * each followed or preceded by a zero). Printable and UTF-16 words have no high bit set, so on
 * binary data the first test alone rejects fifteen words in sixteen.
 */
function nextCandidate(words: Int32Array, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const w = words[i]!;
    if ((w & 0x80808080) !== 0) continue;
    if (((w - 0x20202020) & ~w & 0x80808080) === 0) {
      // Every byte is 0x20 or more; reject a 0x7f (DEL) byte.
      const x = w ^ 0x7f7f7f7f;
      if (((x - 0x01010101) & ~x & 0x80808080) === 0) return i;
    } else if (w !== 0 && ((w & 0xff00ff00) === 0 || (w & 0x00ff00ff) === 0)) {
      return i;
    }
  }
  return end;
}

export class StringScanner {
  private readonly sink: StringSink;
  /** Bytes of an ASCII run that reached the end of the previous chunk, and where it started. */
  private pending: Uint8Array | undefined;
  private pendingAt = 0;
  /** Bytes of a UTF-16LE run that reached the end of the previous chunk (may end mid-pair). */
  private pending16: Uint8Array | undefined;
  private pending16At = 0;
  private position = 0;

  private readonly wasm: WasmScanner | null;

  /**
   * `engine` picks the hot loop: WebAssembly SIMD when available (the default), or the JavaScript
   * loop, which the tests also run to show the two agree.
   */
  private readonly skipPlain: boolean;

  /**
   * `skipPlain` leaves out strings that can yield no evidence (none of EVIDENCE_TRIGGERS in them):
   * on binary data nearly all strings are such noise, and skipping them spares creating them.
   */
  private readonly values: ValueBytesSink | undefined;

  /** `values`: see ValueBytesSink; only the WebAssembly scanner uses it, and only with skipPlain. */
  constructor(
    sink: StringSink,
    options: { engine?: 'wasm' | 'js'; skipPlain?: boolean; values?: ValueBytesSink } = {},
  ) {
    this.sink = sink;
    this.wasm = options.engine === 'js' ? null : wasmScanner();
    this.skipPlain = options.skipPlain ?? false;
    this.values = this.skipPlain ? options.values : undefined;
  }

  /** Where to read the next chunk to avoid a copy (the WebAssembly input area), if there is one. */
  get inputArea(): Buffer | undefined {
    return this.wasm?.input;
  }

  /** Absolute offset of the next byte to be pushed. */
  get offset(): number {
    return this.position;
  }

  /** Where the earliest run still open (waiting for more bytes) began, if any. */
  get openRunStart(): number | undefined {
    const a = this.pending ? this.pendingAt : Number.POSITIVE_INFINITY;
    const b = this.pending16 ? this.pending16At : Number.POSITIVE_INFINITY;
    const first = Math.min(a, b);
    return first === Number.POSITIVE_INFINITY ? undefined : first;
  }

  /** Starts at an absolute offset other than 0 (when scanning one range of a file). */
  seek(offset: number): void {
    this.flush();
    this.position = offset;
  }

  push(chunk: Uint8Array): void {
    if (this.wasm && chunk.length > WASM_INPUT_CAPACITY) {
      for (let at = 0; at < chunk.length; at += WASM_INPUT_CAPACITY) {
        this.push(chunk.subarray(at, at + WASM_INPUT_CAPACITY));
      }
      return;
    }
    const base = this.position;
    this.position += chunk.length;
    // ASCII and UTF-16 runs are tracked apart: each resumes after its own carried-over run.
    const resume = this.continuePending(chunk);
    const resume16 = this.continuePending16(chunk);
    if (resume >= chunk.length && resume16 >= chunk.length) return;
    if (this.wasm) this.scanWasm(this.wasm, chunk, base, resume, resume16);
    else this.scanWords(chunk, base, resume, resume16);
  }

  private scanWasm(
    wasm: WasmScanner,
    chunk: Uint8Array,
    base: number,
    fromAscii: number,
    from16: number,
  ): void {
    const input = wasm.input;
    if (chunk.buffer !== input.buffer || chunk.byteOffset !== input.byteOffset) input.set(chunk);
    const values = this.values;
    const urls = values?.accepting('url') ? URL_TRIGGER : 0;
    const requests = values?.accepting('request') ? REQUEST_TRIGGER : 0;
    const sql = values?.accepting('sql') ? SQL_TRIGGERS : 0;
    const records = wasm.scan(chunk.length, fromAscii, from16, urls, requests, sql);
    let take = false;
    for (let r = 0; r < records.length; r += 3) {
      const flags = records[r]!;
      const kind = flags & 0xf;
      const s = records[r + 1]!;
      const e = records[r + 2]!;
      if (this.skipPlain && (flags & REC_PLAIN) !== 0) continue;
      const triggers = flags >>> 8;
      const known = triggers === ALL_TRIGGERS ? undefined : triggers;
      if (kind === REC_VALUE) {
        if (take) values!.value(BYTE_VALUE_KINDS[flags >>> 8]!, input, s, e);
      } else if (kind === REC_VALUE_STRING) take = values!.string(base + s);
      else if (kind === REC_ASCII)
        this.sink(input.toString('latin1', s, e), base + s, 'ascii', known, (flags & REC_NO_SECRET) !== 0);
      else if (kind === REC_UTF16) this.emit16(input, s, e, base + s, known);
      else if (kind === REC_ASCII_OPEN) {
        this.pending = new Uint8Array(input.subarray(s, e));
        this.pendingAt = base + s;
      } else {
        this.pending16 = new Uint8Array(input.subarray(s, e));
        this.pending16At = base + s;
      }
    }
  }

  /** Emits whatever run is still open: call at the end of the stream. */
  flush(): void {
    if (this.pending && this.pending.length >= MIN_ASCII) {
      this.emitCarried(this.pending, this.pendingAt);
    }
    if (this.pending16) this.emit16(this.pending16, 0, this.pending16.length & ~1, this.pending16At);
    this.pending = undefined;
    this.pending16 = undefined;
  }

  private continuePending(chunk: Uint8Array): number {
    const pending = this.pending;
    if (!pending) return 0;
    let p = 0;
    while (p < chunk.length && PRINTABLE[chunk[p]!] === 1) p++;
    const joined = concat(pending, chunk.subarray(0, p));
    if (p === chunk.length && joined.length < MAX_RUN) {
      this.pending = joined;
      return p;
    }
    this.pending = undefined;
    if (joined.length >= MIN_ASCII) this.emitCarried(joined, this.pendingAt);
    return p === chunk.length ? p : p + 1;
  }

  private continuePending16(chunk: Uint8Array): number {
    const pending = this.pending16;
    if (!pending) return 0;
    // Parity: an odd pending length means the next byte must be the NUL of the last pair.
    let p = 0;
    if (pending.length & 1) {
      if (chunk[0] !== 0) {
        this.pending16 = undefined;
        this.emit16(pending, 0, pending.length - 1, this.pending16At);
        return 0;
      }
      p = 1;
    }
    while (p + 1 < chunk.length && isPrint(chunk[p]) && chunk[p + 1] === 0) p += 2;
    if (p + 1 === chunk.length && isPrint(chunk[p])) p++;
    const joined = concat(pending, chunk.subarray(0, p));
    if (p === chunk.length && joined.length < MAX_RUN) {
      this.pending16 = joined;
      return p;
    }
    this.pending16 = undefined;
    this.emit16(joined, 0, joined.length & ~1, this.pending16At);
    return p;
  }

  /** A run that spanned chunks: filtered like any other, so results do not depend on chunking. */
  private emitCarried(bytes: Uint8Array, offset: number): void {
    if (!this.skipPlain || triggered(bytes, 0, bytes.length, 1))
      this.sink(latin1(bytes, 0, bytes.length), offset, 'ascii');
  }

  private emit16(bytes: Uint8Array, start: number, end: number, offset: number, triggers?: number): void {
    if ((end - start) / 2 < MIN_UTF16) return;
    if (this.skipPlain && triggers === undefined && !triggered(bytes, start, end, 2)) return;
    this.sink(utf16Ascii(bytes, start, end), offset, 'utf16le', triggers);
  }

  private scanWords(chunk: Uint8Array, base: number, fromAscii: number, from16: number): void {
    const len = chunk.length;
    const from = Math.min(fromAscii, from16);
    const firstWord = Math.ceil((chunk.byteOffset + from) / 4) * 4 - chunk.byteOffset;
    const wordsStart = chunk.byteOffset + firstWord;
    const nWords = Math.max(0, (len - firstWord) >> 2);
    const words = nWords > 0 ? new Int32Array(chunk.buffer, wordsStart, nWords) : NO_WORDS;
    let resume = fromAscii;
    let resume16 = from16;
    let carried = false;
    let carried16 = false;
    for (let i = nextCandidate(words, 0, nWords); i < nWords; i = nextCandidate(words, i + 1, nWords)) {
      const w = words[i]!;
      const x = w ^ 0x7f7f7f7f;
      const bad = ((w - 0x20202020) & ~w & 0x80808080) | ((x - 0x01010101) & ~x & 0x80808080);
      const at = firstWord + (i << 2);
      if (bad === 0) {
        if (at < resume) continue;
        let s = at;
        while (s > resume && PRINTABLE[chunk[s - 1]!] === 1) s--;
        let e = at + 4;
        while (e < len && PRINTABLE[chunk[e]!] === 1) e++;
        if (e === len) {
          this.pending = new Uint8Array(chunk.subarray(s, e));
          this.pendingAt = base + s;
          carried = true;
          break;
        }
        if (e - s >= MIN_ASCII) {
          if (!this.skipPlain || triggered(chunk, s, e, 1)) this.sink(latin1(chunk, s, e), base + s, 'ascii');
        }
        resume = e + 1;
        i = ((e + 1 - firstWord) >> 2) - 1;
        continue;
      }
      let pairStart = -1;
      if ((w & 0xff00ff00) === 0) {
        if (isPrint(w & 0xff) && isPrint((w >>> 16) & 0xff)) pairStart = at;
      } else if ((w & 0x00ff00ff) === 0) {
        if (isPrint((w >>> 8) & 0xff) && isPrint(w >>> 24)) pairStart = at + 1;
      }
      if (pairStart < 0 || pairStart < resume16) continue;
      let s = pairStart;
      while (s - 2 >= resume16 && isPrint(chunk[s - 2]) && chunk[s - 1] === 0) s -= 2;
      let e = pairStart;
      while (e + 1 < len && isPrint(chunk[e]) && chunk[e + 1] === 0) e += 2;
      if (e + 1 >= len && (e === len || isPrint(chunk[e]))) {
        this.pending16 = new Uint8Array(chunk.subarray(s, len));
        this.pending16At = base + s;
        carried16 = true;
        break;
      }
      this.emit16(chunk, s, e, base + s);
      resume16 = e;
      i = ((e - firstWord) >> 2) - 1;
      if (i < -1) i = -1;
    }
    if (!carried && !this.pending) this.carryShortTail(chunk, base, resume);
    if (!carried16 && !this.pending16) this.carryShortTail16(chunk, base, resume16);
  }

  /** A run too short to contain an aligned word may still continue in the next chunk. */
  private carryShortTail(chunk: Uint8Array, base: number, resume: number): void {
    const len = chunk.length;
    let s = len;
    while (s > resume && s > len - 16 && PRINTABLE[chunk[s - 1]!] === 1) s--;
    if (s < len) {
      this.pending = new Uint8Array(chunk.subarray(s, len));
      this.pendingAt = base + s;
    }
  }

  private carryShortTail16(chunk: Uint8Array, base: number, resume: number): void {
    const len = chunk.length;
    let s = len;
    if (s - 1 >= resume && isPrint(chunk[s - 1])) s -= 1; // a printable byte whose NUL may come next
    while (s - 2 >= resume && s > len - 32 && isPrint(chunk[s - 2]) && chunk[s - 1] === 0) s -= 2;
    if (s < len && (len - s >= 2 || isPrint(chunk[s]))) {
      this.pending16 = new Uint8Array(chunk.subarray(s, len));
      this.pending16At = base + s;
    }
  }
}
