import { CodedError, ErrorCode } from '../errors.ts';

/**
 * A streaming reader for the tar archives `docker cp <container>:<path> -` writes (Go's
 * archive/tar: ustar with PAX extended headers; GNU long names are understood too) and for the
 * sparse archives `tar -S` makes of cores (GNU's old 'S' members with their extension headers, and
 * the PAX sparse formats 0.0, 0.1 and 1.0). Bytes go in with `push`, members come out through
 * callbacks as their data streams by: nothing is buffered but one 512-byte header (and a sparse
 * member's map), so a member of many gigabytes costs no memory. A sparse member comes out as the
 * file it was, its holes as zeros, under its real name.
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

/** PAX records; GNU.sparse.offset/numbytes repeat (sparse format 0.0), so they are kept in order. */
interface PaxRecords {
  records: Map<string, string>;
  sparsePairs: string[];
}

function parsePax(text: string): PaxRecords {
  const records = new Map<string, string>();
  const sparsePairs: string[] = [];
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
    if (eq > 0) {
      const key = record.slice(0, eq);
      records.set(key, record.slice(eq + 1));
      if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes')
        sparsePairs.push(record.slice(eq + 1));
    }
    at += length;
  }
  return { records, sparsePairs };
}

/** One stretch of a sparse file's data: `length` stored bytes belong at `offset`. */
export interface SparseRegion {
  offset: number;
  length: number;
}

const sparseNumber = (text: string, what: string): number => {
  if (!/^\d{1,16}$/.test(text.trim()))
    throw new CodedError(
      ErrorCode.MalformedTar,
      `tar sparse ${what} is not a number: "${text.slice(0, 40)}"`,
    );
  const value = Number(text.trim());
  if (!Number.isSafeInteger(value))
    throw new CodedError(ErrorCode.MalformedTar, `tar sparse ${what} is impossibly large`);
  return value;
};

/**
 * The largest real size a sparse member may claim: 128 TiB, the x86_64 and aarch64 user address
 * space, which no core exceeds. Holes are read as zeros, so a garbled size must not start an
 * endless stream of them.
 */
const MAX_SPARSE_SIZE = 2 ** 47;

/** Pairs of numbers (offset, length, offset, length, ...) as regions, checked to be in order. */
function sparseMap(numbers: readonly string[], realSize: number): SparseRegion[] {
  if (realSize > MAX_SPARSE_SIZE) {
    throw new CodedError(ErrorCode.MalformedTar, `tar sparse member claims ${realSize} bytes, past any core`);
  }
  if (numbers.length % 2 !== 0)
    throw new CodedError(ErrorCode.MalformedTar, 'tar sparse map has an odd count of numbers');
  const regions: SparseRegion[] = [];
  let end = 0;
  for (let i = 0; i < numbers.length; i += 2) {
    const offset = sparseNumber(numbers[i]!, 'offset');
    const length = sparseNumber(numbers[i + 1]!, 'length');
    if (offset < end || offset + length > realSize) {
      throw new CodedError(
        ErrorCode.MalformedTar,
        `tar sparse map region ${i / 2} (${offset}+${length}) is out of order or past the file's ${realSize} bytes`,
      );
    }
    end = offset + length;
    if (length > 0) regions.push({ offset, length });
  }
  return regions;
}

/** Zeros for the holes, pushed a slice at a time (nothing downstream writes to a chunk it is given). */
const ZEROS = new Uint8Array(1 << 20);

/**
 * Turns a sparse member's stored bytes back into the file: zeros up to each region, the region's
 * bytes, zeros to the real size at the end. Format 1.0 keeps the map at the start of the data
 * (decimal lines: the count, then offset and length per region, padded to a block), read first.
 */
class SparseSink implements TarEntrySink {
  private readonly inner: TarEntrySink;
  private readonly realSize: number;
  private regions: SparseRegion[] = [];
  private phase: 'map' | 'pad' | 'data';
  private mapText = '';
  private mapLines: string[] = [];
  private mapRead = 0;
  private padLeft = 0;
  private next = 0;
  private regionLeft = 0;
  private position = 0;

  constructor(inner: TarEntrySink, regions: SparseRegion[] | undefined, realSize: number) {
    this.inner = inner;
    this.realSize = realSize;
    this.phase = regions ? 'data' : 'map';
    if (regions) this.regions = regions;
  }

  push(chunk: Uint8Array): void {
    let at = this.phase === 'map' ? this.readMap(chunk) : 0;
    if (this.phase === 'pad') {
      const skip = Math.min(this.padLeft, chunk.length - at);
      this.padLeft -= skip;
      at += skip;
      if (this.padLeft === 0) this.phase = 'data';
    }
    if (this.phase !== 'data') return;
    while (at < chunk.length) {
      if (this.regionLeft === 0) {
        const region = this.regions[this.next++];
        if (!region) {
          throw new CodedError(ErrorCode.MalformedTar, 'tar sparse member holds more data than its map');
        }
        this.zeros(region.offset - this.position);
        this.regionLeft = region.length;
      }
      const take = Math.min(this.regionLeft, chunk.length - at);
      this.inner.push(chunk.subarray(at, at + take));
      this.regionLeft -= take;
      this.position += take;
      at += take;
    }
  }

  end(complete: boolean): void {
    if (complete && this.phase !== 'data') {
      throw new CodedError(ErrorCode.MalformedTar, 'tar sparse member ends inside its map');
    }
    if (complete) this.zeros(this.realSize - this.position);
    this.inner.end(complete);
  }

  private zeros(count: number): void {
    for (let left = count; left > 0; left -= ZEROS.length) {
      this.inner.push(ZEROS.subarray(0, Math.min(left, ZEROS.length)));
    }
    this.position += Math.max(0, count);
  }

  /** Format 1.0: reads the map's lines at the start of the data; returns where they end. */
  private readMap(chunk: Uint8Array): number {
    let at = 0;
    while (at < chunk.length && this.phase === 'map') {
      const newline = chunk.indexOf(0x0a, at);
      const end = newline < 0 ? chunk.length : newline;
      this.mapText += decoder.decode(chunk.subarray(at, end));
      this.mapRead += end - at + (newline < 0 ? 0 : 1);
      at = newline < 0 ? chunk.length : newline + 1;
      if (this.mapRead > MAX_META)
        throw new CodedError(ErrorCode.MalformedTar, 'tar sparse map is over 1 MiB');
      if (newline < 0) break;
      this.mapLines.push(this.mapText);
      this.mapText = '';
      const count = sparseNumber(this.mapLines[0]!, 'region count');
      if (this.mapLines.length < 1 + 2 * count) continue;
      this.regions = sparseMap(this.mapLines.slice(1), this.realSize);
      this.mapLines = [];
      this.padLeft = (BLOCK - (this.mapRead % BLOCK)) % BLOCK;
      this.phase = this.padLeft > 0 ? 'pad' : 'data';
    }
    return at;
  }
}

const MAX_META = 1 << 20;

/**
 * The text without its trailing NULs. Not `replace(/\0+$/, '')`: on a long run of NULs that is
 * not at the end (a GNU long-name member holding a core's bytes), that regex tries every start of
 * the run and is quadratic: 100,000 NULs took 8.5 s.
 */
export function trimTrailingNuls(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0) end--;
  return text.slice(0, end);
}

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
  private paxSparse: string[] = [];
  /** A GNU 'S' member whose extension headers (more of its map) come before its data. */
  private gnuSparse: { header: TarEntryHeader; numbers: string[]; stored: number } | undefined;
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
      if (this.meta.kind === 'pax') ({ records: this.pax, sparsePairs: this.paxSparse } = parsePax(text));
      else this.longName = trimTrailingNuls(text);
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
    if (this.gnuSparse) {
      this.onSparseExtension(block);
      return;
    }
    if (!isTarHeader(block)) {
      throw new CodedError(
        ErrorCode.MalformedTar,
        `tar header checksum mismatch after ${this.entries} member(s)`,
      );
    }
    const typeflag = String.fromCharCode(block[156]!);
    const size = numeric(block, 124, 12, 'member size');
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L') {
      this.startMeta(typeflag, size);
      return;
    }
    const member = this.withExtendedHeaders(headerName(block), size, headerMtime(block));
    const type = entryType(typeflag);
    this.entries++;
    this.remaining = member.size;
    if (typeflag === 'S') this.startGnuSparseMember(block, member, type);
    else this.startMember(member, type);
  }

  /** A PAX or GNU long-name header: its data is collected, then applies to the next member. */
  private startMeta(typeflag: 'x' | 'g' | 'L', size: number): void {
    if (size > MAX_META) throw new CodedError(ErrorCode.MalformedTar, `tar extended header of ${size} bytes`);
    this.remaining = size;
    this.meta = { kind: typeflag === 'L' ? 'gnu-name' : 'pax', chunks: [] };
    if (typeflag === 'g') this.meta = { kind: 'pax', chunks: [] };
    if (size === 0) this.endMember();
  }

  /** The member's name, size and time as the PAX records and GNU long name before it say; both then cleared. */
  private withExtendedHeaders(name: string, size: number, mtime: number): HeaderMember {
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
    const sparse = this.paxSparseMember(size);
    if (sparse) name = sparse.name ?? name;
    this.pax = new Map();
    this.paxSparse = [];
    this.longName = undefined;
    return { name, size, mtime, sparse };
  }

  /** GNU's old sparse member: four regions in the header, more in extension blocks after it. */
  private startGnuSparseMember(block: Uint8Array, member: HeaderMember, type: TarEntryHeader['type']): void {
    const header = {
      name: member.name,
      size: numeric(block, 483, 12, 'sparse real size'),
      mtime: memberTime(member.mtime),
      type,
    };
    const numbers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const offset = field(block, 386 + i * 24, 12);
      if (offset.trim() === '') break;
      numbers.push(octalText(offset), octalText(field(block, 398 + i * 24, 12)));
    }
    this.gnuSparse = { header, numbers, stored: member.size };
    // The data (and its padding) begins after the last extension block.
    this.remaining = 0;
    this.padding = 0;
    if (block[482] === 0) this.startGnuSparse();
  }

  private startMember({ name, size, mtime, sparse }: HeaderMember, type: TarEntryHeader['type']): void {
    if (sparse) {
      const header: TarEntryHeader = { name, size: sparse.realSize, mtime: memberTime(mtime), type };
      const sink = type === 'file' ? this.onEntry(header) : undefined;
      this.sink = sink && new SparseSink(sink, sparse.regions, sparse.realSize);
    } else {
      // Links, directories and devices carry no data (size is 0 for them in practice).
      this.sink = type === 'file' ? this.onEntry({ name, size, mtime: memberTime(mtime), type }) : undefined;
    }
    if (size === 0) {
      this.sink?.end(true);
      this.sink = undefined;
    }
  }

  /**
   * The PAX sparse formats: 0.0 (GNU.sparse.offset/numbytes pairs), 0.1 (GNU.sparse.map) and 1.0
   * (the map at the start of the data); the real name is GNU.sparse.name, not the GNUSparseFile.N
   * placeholder the header holds.
   */
  private paxSparseMember(
    stored: number,
  ): { name: string | undefined; realSize: number; regions: SparseRegion[] | undefined } | undefined {
    const major = this.pax.get('GNU.sparse.major');
    const realText = this.pax.get('GNU.sparse.realsize') ?? this.pax.get('GNU.sparse.size');
    if (realText === undefined) return undefined;
    const realSize = sparseNumber(realText, 'real size');
    const name = this.pax.get('GNU.sparse.name');
    if (major !== undefined) {
      if (major !== '1')
        throw new CodedError(ErrorCode.MalformedTar, `tar sparse format ${major} is unknown`);
      return { name, realSize, regions: undefined };
    }
    const map = this.pax.get('GNU.sparse.map');
    const numbers = map !== undefined ? (map === '' ? [] : map.split(',')) : this.paxSparse;
    const regions = sparseMap(numbers, realSize);
    checkStored(regions, stored);
    return { name, realSize, regions };
  }

  private onSparseExtension(block: Uint8Array): void {
    const pending = this.gnuSparse!;
    for (let i = 0; i < 21; i++) {
      const offset = field(block, i * 24, 12);
      if (offset.trim() === '') break;
      pending.numbers.push(octalText(offset), octalText(field(block, i * 24 + 12, 12)));
    }
    if (block[504] === 0) this.startGnuSparse();
  }

  private startGnuSparse(): void {
    const { header, numbers, stored } = this.gnuSparse!;
    this.gnuSparse = undefined;
    const regions = sparseMap(numbers, header.size);
    checkStored(regions, stored);
    const sink = this.onEntry(header);
    this.sink = sink && new SparseSink(sink, regions, header.size);
    this.remaining = stored;
    this.padding = (BLOCK - (stored % BLOCK)) % BLOCK;
    if (stored === 0) {
      this.sink?.end(true);
      this.sink = undefined;
    }
  }
}

/** An octal field as decimal text, for sparseMap. */
function octalText(text: string): string {
  const trimmed = text.trim();
  if (!/^[0-7]{1,16}$/.test(trimmed)) {
    throw new CodedError(ErrorCode.MalformedTar, `tar sparse header number is not octal: "${trimmed}"`);
  }
  return String(Number.parseInt(trimmed, 8));
}

/** The regions must account for exactly the bytes stored. */
function checkStored(regions: readonly SparseRegion[], stored: number): void {
  const total = regions.reduce((sum, r) => sum + r.length, 0);
  if (total !== stored) {
    throw new CodedError(
      ErrorCode.MalformedTar,
      `tar sparse map covers ${total} bytes but the member stores ${stored}`,
    );
  }
}

/** A member's header as read, with the extended headers before it applied. */
interface HeaderMember {
  name: string;
  /** Bytes stored in the archive. */
  size: number;
  /** Seconds since the epoch; NaN when unreadable. */
  mtime: number;
  sparse: { name: string | undefined; realSize: number; regions: SparseRegion[] | undefined } | undefined;
}

function headerName(block: Uint8Array): string {
  const magic = field(block, 257, 6);
  // POSIX ustar's prefix field; GNU's magic ("ustar ") puts times and a sparse map there instead.
  const prefix = magic === 'ustar' ? field(block, 345, 155) : '';
  return prefix ? `${prefix}/${field(block, 0, 100)}` : field(block, 0, 100);
}

/** A time nothing can read is no reason to lose the member: it is left out (see memberTime). */
function headerMtime(block: Uint8Array): number {
  try {
    return numeric(block, 136, 12, 'mtime');
  } catch {
    return Number.NaN;
  }
}

function entryType(typeflag: string): TarEntryHeader['type'] {
  return typeflag === '0' || typeflag === '\0' || typeflag === '7' || typeflag === 'S'
    ? 'file'
    : typeflag === '5'
      ? 'directory'
      : typeflag === '1' || typeflag === '2'
        ? 'link'
        : 'other';
}
