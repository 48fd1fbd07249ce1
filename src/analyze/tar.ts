import { CodedError, ErrorCode } from '../errors.ts';

/**
 * A streaming reader for the tar archives `docker cp <container>:<path> -` writes (Go's
 * archive/tar: ustar with PAX extended headers; GNU long names are understood too). Bytes go in
 * with `push`, members come out through callbacks as their data streams by: nothing is buffered but
 * one 512-byte header, so a member of many gigabytes costs no memory.
 */

export const BLOCK = 512;

export interface TarEntryHeader {
  name: string;
  size: number;
  /** Undefined when the header's mtime is not a time a Date can hold (base-256 or PAX garbage). */
  mtime: Date | undefined;
  type: 'file' | 'directory' | 'link' | 'other';
}

export interface TarEntrySink {
  push(chunk: Uint8Array): void;
  /** `complete` is false when the archive ended before the member's last byte. */
  end(complete: boolean): void;
}

/** Returns a sink for the member's bytes, or undefined to skip them. */
export type OnTarEntry = (header: TarEntryHeader) => TarEntrySink | undefined;

const decoder = new TextDecoder('utf-8', { fatal: false });

function field(block: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return decoder.decode(block.subarray(start, end));
}

function numeric(block: Uint8Array, start: number, length: number, what: string): number {
  if (block[start]! & 0x80) {
    // GNU/Go base-256 encoding for sizes over 8 GiB.
    let value = BigInt(block[start]! & 0x7f);
    for (let i = start + 1; i < start + length; i++) value = (value << 8n) | BigInt(block[i]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new CodedError(ErrorCode.MalformedTar, `tar ${what} is impossibly large`);
    }
    return Number(value);
  }
  const text = field(block, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text))
    throw new CodedError(ErrorCode.MalformedTar, `tar ${what} is not octal: "${text}"`);
  return Number.parseInt(text, 8);
}

/** True when the block's stored checksum matches: how a tar header is told from anything else. */
export function isTarHeader(block: Uint8Array): boolean {
  if (block.length < BLOCK) return false;
  let stored: number;
  try {
    stored = numeric(block, 148, 8, 'checksum');
  } catch {
    return false;
  }
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === stored && sum !== 8 * 0x20;
}

function parsePax(text: string): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  const bytes = Buffer.from(text, 'utf8');
  while (at < bytes.length) {
    const space = bytes.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number.parseInt(bytes.subarray(at, space).toString('ascii'), 10);
    if (!Number.isFinite(length) || length <= 0 || at + length > bytes.length) {
      throw new CodedError(ErrorCode.MalformedTar, 'malformed PAX extended header record');
    }
    const record = bytes.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

const MAX_META = 1 << 20;

/** The largest time a Date holds, in seconds either side of 1970 (ECMA-262: 8.64e15 ms). */
const MAX_DATE_SECONDS = 8.64e12;

/** A member's mtime as a Date, or undefined when no Date can hold it. */
function memberTime(seconds: number): Date | undefined {
  return Number.isFinite(seconds) && Math.abs(seconds) <= MAX_DATE_SECONDS
    ? new Date(seconds * 1000)
    : undefined;
}

export class TarReader {
  private readonly onEntry: OnTarEntry;
  private header = new Uint8Array(BLOCK);
  private headerFilled = 0;
  /** Bytes of the current member still to come, then the padding to the next block. */
  private remaining = 0;
  private padding = 0;
  private sink: TarEntrySink | undefined;
  /** A PAX or GNU long-name member being collected, applied to the next header. */
  private meta: { kind: 'pax' | 'gnu-name'; chunks: Uint8Array[] } | undefined;
  private pax = new Map<string, string>();
  private longName: string | undefined;
  private zeroBlocks = 0;
  private finished = false;
  entries = 0;

  constructor(onEntry: OnTarEntry) {
    this.onEntry = onEntry;
  }

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length && !this.finished) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - at);
        const part = chunk.subarray(at, at + take);
        if (this.meta) this.meta.chunks.push(new Uint8Array(part));
        else this.sink?.push(part);
        this.remaining -= take;
        at += take;
        if (this.remaining === 0) this.endMember();
        continue;
      }
      if (this.padding > 0) {
        const skip = Math.min(this.padding, chunk.length - at);
        this.padding -= skip;
        at += skip;
        continue;
      }
      const take = Math.min(BLOCK - this.headerFilled, chunk.length - at);
      this.header.set(chunk.subarray(at, at + take), this.headerFilled);
      this.headerFilled += take;
      at += take;
      if (this.headerFilled === BLOCK) {
        this.headerFilled = 0;
        this.onHeader(this.header);
      }
    }
  }

  /** Call at the end of the input: a member cut short is ended as incomplete. */
  end(): void {
    if (this.remaining > 0 && this.sink) this.sink.end(false);
    else if (this.remaining === 0 && this.headerFilled > 0 && !this.finished && this.entries === 0) {
      throw new CodedError(ErrorCode.MalformedTar, 'tar stream ended inside its first header');
    }
    this.sink = undefined;
    this.remaining = 0;
  }

  private endMember(): void {
    if (this.meta) {
      const text = decoder.decode(Buffer.concat(this.meta.chunks));
      if (this.meta.kind === 'pax') this.pax = parsePax(text);
      else this.longName = text.replace(/\0+$/, '');
      this.meta = undefined;
    } else {
      this.sink?.end(true);
      this.sink = undefined;
    }
  }

  private onHeader(block: Uint8Array): void {
    if (block.every((b) => b === 0)) {
      this.zeroBlocks++;
      if (this.zeroBlocks >= 2) this.finished = true;
      return;
    }
    this.zeroBlocks = 0;
    if (!isTarHeader(block)) {
      throw new CodedError(
        ErrorCode.MalformedTar,
        `tar header checksum mismatch after ${this.entries} member(s)`,
      );
    }
    const typeflag = String.fromCharCode(block[156]!);
    let size = numeric(block, 124, 12, 'member size');
    const magic = field(block, 257, 6);
    const prefix = magic.startsWith('ustar') ? field(block, 345, 155) : '';
    let name = prefix ? `${prefix}/${field(block, 0, 100)}` : field(block, 0, 100);
    // A time nothing can read is no reason to lose the member: it is left out (see memberTime).
    let mtime: number;
    try {
      mtime = numeric(block, 136, 12, 'mtime');
    } catch {
      mtime = Number.NaN;
    }
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L') {
      if (size > MAX_META)
        throw new CodedError(ErrorCode.MalformedTar, `tar extended header of ${size} bytes`);
      this.remaining = size;
      this.meta = { kind: typeflag === 'L' ? 'gnu-name' : 'pax', chunks: [] };
      if (typeflag === 'g') this.meta = { kind: 'pax', chunks: [] };
      if (size === 0) this.endMember();
      return;
    }
    if (this.longName !== undefined) name = this.longName;
    const paxPath = this.pax.get('path');
    if (paxPath !== undefined) name = paxPath;
    const paxSize = this.pax.get('size');
    if (paxSize !== undefined && /^\d+$/.test(paxSize)) {
      size = Number(paxSize);
      if (!Number.isSafeInteger(size)) {
        throw new CodedError(ErrorCode.MalformedTar, `tar PAX size is impossibly large: ${paxSize}`);
      }
      this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    }
    // PAX times are decimal seconds with an optional fraction ("1732502400.25"); anything else
    // ("0x10", "", "1e400") is ignored in favour of the header's own field.
    const paxMtime = this.pax.get('mtime');
    if (paxMtime !== undefined && /^-?\d{1,20}(\.\d*)?$/.test(paxMtime)) mtime = Number(paxMtime);
    this.pax = new Map();
    this.longName = undefined;
    const type =
      typeflag === '0' || typeflag === '\0' || typeflag === '7'
        ? 'file'
        : typeflag === '5'
          ? 'directory'
          : typeflag === '1' || typeflag === '2'
            ? 'link'
            : 'other';
    this.entries++;
    // Links, directories and devices carry no data (size is 0 for them in practice).
    this.sink = type === 'file' ? this.onEntry({ name, size, mtime: memberTime(mtime), type }) : undefined;
    this.remaining = size;
    if (size === 0) {
      this.sink?.end(true);
      this.sink = undefined;
    }
  }
}
