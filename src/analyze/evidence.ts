import { type EvidenceKind, extractEvidence } from './extract.ts';
import { mayHoldSecret, redact } from './redact.ts';
import type { ByteValueKind, StringEncoding, ValueBytesSink } from './strings.ts';
import { newOverflowTable, type OverflowTable } from './wasm/overflow-wasm.ts';

/**
 * Counts the evidence found in one dump (or one range of it). Values are redacted before they are
 * stored, so a secret is never held past the string it was found in.
 *
 * Memory is bounded, counts are not cut: the first MAX_DISTINCT_PER_KIND distinct values of a
 * kind (and MAX_STORED_CHARS characters in all) are counted here, as objects; every later distinct
 * value goes to an overflow map of key → count, which, each time it holds MAX_OVERFLOW_CHARS
 * characters, is sorted by key and handed to the spill port (a run file on disk; see
 * src/evidence/spill.ts). Once a kind holds MAX_DISTINCT_PER_KIND values and there is a spill
 * port, each later occurrence goes to the overflow without a look here, even of a value kept here:
 * the merge adds it to the kept item; so does every kind once MAX_STORED_CHARS turned a value away
 * (on a heap of long strings that comes first, and each value was looked up in vain). Nothing is dropped on account of where it lies in memory: after the
 * scan, the runs of every dump are merged in key order with the values kept here (see
 * src/evidence/overflow.ts), which makes each count exact and finds the values that recur across
 * dumps, however many others there are. Keys rather than hashes are spilled: a sorted run of the
 * keys themselves gives the exact values back in the same pass that finds them, with no
 * collisions and no second scan of the dumps (a gzip read twice costs more than the disk).
 *
 * Without a spill port (or once the port refuses: its byte budget spent, the disk full), overflow
 * values are dropped and counted in `dropped`; the report then marks what they could have changed
 * as a lower bound (and once the port refuses, that includes later occurrences of values kept here).
 */

/**
 * Small on purpose. Counts do not depend on these caps (the overflow and the merge make them
 * exact), only what is held as JavaScript objects until the report does: the kept values of every
 * dump of a set stay on the main thread until the end. At 20,000 a kind and 4 Mi characters, eight
 * text-dense dumps held 200 MiB of them there (465 MiB peak RSS of the 512 allowed), and each
 * value was looked up in a large Map before the caps sent it to the WebAssembly table; at 1,000
 * and 256 Ki the same set peaks at about 200 MiB and takes about a fifth less CPU, with the same
 * correlations and findings.
 */
export const MAX_DISTINCT_PER_KIND = 1_000;
/** And at most this many characters of distinct values in all, so unique strings cannot fill memory. */
export const MAX_STORED_CHARS = 256 * 1024;
/** Characters of overflow keys held before they are spilled as one sorted run. */
export const MAX_OVERFLOW_CHARS = 1024 * 1024;

/** The key values are sorted and matched by: kind, NUL, value. Compared by code units. */
export function evidenceKey(kind: EvidenceKind, value: string): string {
  return `${kind}\u0000${value}`;
}

/** An overflow entry: key, occurrences, encoding of the first. */
export type OverflowEntry = [key: string, count: number, encoding: StringEncoding];

/** Where overflow goes: I/O, so a port (src/evidence/spill.ts is the adapter). */
export interface OverflowSpill {
  /**
   * Stores entries (sorted by key, each key once) as one run; returns its reference (a path), or
   * undefined when it cannot, in which case their occurrences are counted as dropped.
   */
  write(entries: readonly OverflowEntry[]): string | undefined;
  /** The same for a run already laid out in the run format (by the WebAssembly overflow table). */
  writeRun(run: Uint8Array): string | undefined;
}

export const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * How many strings (of at most MAX_RECENT_LENGTH characters) onString remembers the yield of. Few,
 * so the cache dies young: at 4096, cleared in place, every string of a text-dense core (nearly all
 * distinct) was promoted to the old generation before it was let go, 480 MB per 300 MB core, and
 * garbage collection took a third of the analysis; at 256, replaced when full, 10 MB.
 */
const MAX_RECENT = 256;
const MAX_RECENT_LENGTH = 1024;

export interface EvidenceItem {
  kind: EvidenceKind;
  value: string;
  count: number;
  encoding: StringEncoding;
}

export interface EvidenceSnapshot {
  items: EvidenceItem[];
  redactions: number;
  /** Occurrences neither counted here nor spilled (no spill port, or it refused): lost. */
  dropped: number;
  strings: number;
  /** Sorted runs of overflow entries (see OverflowSpill), merged after the scan. */
  runs: string[];
  /**
   * Keys of items here whose value is in other dumps too, where it could not be listed (see
   * src/evidence/overflow.ts): their count of dumps is a lower bound.
   */
  unlistedElsewhere: string[];
  /** Secret values hidden so far; never printed, used to hide unnamed copies (see KnownSecrets). */
  secrets: string[];
}

export class EvidenceCollector {
  /**
   * Items by kind, then value: a lookup by the value itself. Keyed by evidenceKey before, every
   * value found made a concatenated key that V8 then flattened to hash it, a copy of each of the
   * millions of values of a text-dense core and the largest single cost of its analysis.
   */
  private readonly items = new Map<EvidenceKind, Map<string, EvidenceItem>>();
  redactions = 0;
  dropped = 0;
  strings = 0;
  private readonly secrets = new Set<string>();
  private storedChars = 0;
  /** A value did not fit in MAX_STORED_CHARS: every kind counts as full from then on. */
  private charsFull = false;
  private readonly spill: OverflowSpill | undefined;
  private readonly overflow = new Map<string, number>();
  private overflowChars = 0;
  /** The overflow in WebAssembly memory (see overflow.c), made on the first value past the caps. */
  private table: OverflowTable | null | undefined;
  /** Occurrences held in the table, counted as dropped if its run cannot be written. */
  private tableOccurrences = 0;
  private readonly runs: string[] = [];

  constructor(options: { spill?: OverflowSpill } = {}) {
    this.spill = options.spill;
  }

  /**
   * What recent strings yielded, for strings that held no secret: a dump holds the same URL or
   * request line in hundreds of buffers, and each copy would run the extractors and the redaction
   * rules again. Replaced when full (see MAX_RECENT); a string with a secret in it is never kept here.
   */
  private recent = new Map<string, string[]>();

  /** The StringSink: feed every printable string found in the dump. */
  readonly onString = (
    text: string,
    _offset: number,
    encoding: StringEncoding,
    triggers?: number,
    noMarkers = false,
  ): void => {
    this.strings++;
    const known = this.recent.get(text);
    if (known) {
      for (let i = 0; i < known.length; i += 2)
        this.count(known[i] as EvidenceKind, known[i + 1] as string, 1, encoding);
      return;
    }
    // Kind and value pairs, flat: one array a string rather than one per value.
    const found: string[] = [];
    let secretFree = true;
    extractEvidence(
      text,
      encoding,
      (kind, raw) => {
        // No marker in the string (strings.c found none), none in its values.
        if (noMarkers || !mayHoldSecret(raw)) {
          this.count(kind, raw, 1, encoding);
          found.push(kind, raw);
          return;
        }
        const { text: value, count, secrets } = redact(raw);
        if (count > 0) {
          secretFree = false;
          this.redactions += count;
          for (const secret of secrets) if (this.secrets.size < 1000) this.secrets.add(secret);
        }
        this.count(kind, value, 1, encoding);
        found.push(kind, value);
      },
      triggers,
    );
    if (secretFree && text.length <= MAX_RECENT_LENGTH) {
      if (this.recent.size >= MAX_RECENT) this.recent = new Map();
      this.recent.set(text, found);
    }
  };

  add(item: EvidenceItem): void {
    this.count(item.kind, item.value, item.count, item.encoding);
  }

  /**
   * URLs and request lines as bytes (see ValueBytesSink), a kind taken once count() would send
   * every value of it straight to the overflow table anyway (the kind full, a spill, the table
   * there): the same count, without a string, a regular expression or a secret test in JavaScript
   * for each (strings.c did them).
   */
  readonly valueBytes: ValueBytesSink = {
    accepting: (kind: ByteValueKind) => {
      if (!this.spill || this.table === null) return false;
      if (!this.charsFull && (this.items.get(kind)?.size ?? 0) < MAX_DISTINCT_PER_KIND) return false;
      this.table ??= newOverflowTable();
      return this.table !== null;
    },
    string: () => {
      this.strings++;
      return true;
    },
    value: (kind, bytes, start, end) => {
      const table = this.table!;
      if (!table.addBytes(kind, bytes, start, end)) {
        this.flushTable(table);
        table.addBytes(kind, bytes, start, end);
      }
      this.tableOccurrences++;
    },
  };

  /**
   * add() without an item: called for every value found, so it makes no object for a value already
   * counted or sent to the overflow (a text-dense core has millions of them).
   */
  private count(kind: EvidenceKind, value: string, count: number, encoding: StringEncoding): void {
    let ofKind = this.items.get(kind);
    if (!ofKind) {
      ofKind = new Map();
      this.items.set(kind, ofKind);
    }
    // Once a kind is full and there is a spill, a value goes to the overflow without looking it up
    // here: the merge adds what a dump spilled of a value it kept to the kept item (see
    // src/evidence/overflow.ts), so the count comes out the same, and on a text-dense core nearly
    // every lookup in a full map was a miss that cost more than the overflow table's own.
    const full = this.charsFull || ofKind.size >= MAX_DISTINCT_PER_KIND;
    if (!(full && this.spill)) {
      const existing = ofKind.get(value);
      if (existing) {
        existing.count += count;
        return;
      }
    }
    if (full || this.storedChars + value.length > MAX_STORED_CHARS) {
      if (!full) this.charsFull = true;
      if (this.spill && this.table !== null) {
        this.table ??= newOverflowTable();
        if (this.table) {
          this.addToTable(this.table, kind, value, count, encoding);
          return;
        }
      }
      this.addOverflow(evidenceKey(kind, value), count, encoding);
      return;
    }
    this.storedChars += value.length;
    ofKind.set(value, { kind, value, count, encoding });
  }

  private addOverflow(key: string, count: number, encoding: StringEncoding): void {
    if (!this.spill) {
      this.dropped += count;
      return;
    }
    // Count and encoding in one number (count * 2 + 1 for UTF-16): no object per overflow value.
    const packed = this.overflow.get(key);
    if (packed !== undefined) {
      this.overflow.set(key, packed + count * 2);
      return;
    }
    this.overflow.set(key, count * 2 + (encoding === 'ascii' ? 0 : 1));
    this.overflowChars += key.length;
    if (this.overflowChars >= MAX_OVERFLOW_CHARS) this.flushOverflow();
  }

  private addToTable(
    table: OverflowTable,
    kind: EvidenceKind,
    value: string,
    count: number,
    encoding: StringEncoding,
  ): void {
    if (!table.add(kind, value, count, encoding)) {
      this.flushTable(table);
      table.add(kind, value, count, encoding);
    }
    this.tableOccurrences += count;
  }

  /** Spills the table as one sorted run. */
  private flushTable(table: OverflowTable): void {
    if (table.size === 0) return;
    const run = this.spill?.writeRun(table.run());
    if (run === undefined) this.dropped += this.tableOccurrences;
    else this.runs.push(run);
    table.reset();
    this.tableOccurrences = 0;
  }

  /** Spills the overflow map as one sorted run. */
  private flushOverflow(): void {
    if (this.table) this.flushTable(this.table);
    if (this.overflow.size === 0) return;
    // The default sort compares strings by code units, as byKey does, without calling back into JS.
    const keys = [...this.overflow.keys()].sort();
    const entries: OverflowEntry[] = keys.map((key) => {
      const packed = this.overflow.get(key)!;
      return [key, Math.floor(packed / 2), packed % 2 === 0 ? 'ascii' : 'utf16le'];
    });
    this.overflow.clear();
    this.overflowChars = 0;
    const run = this.spill?.write(entries);
    if (run === undefined) for (const entry of entries) this.dropped += entry[1];
    else this.runs.push(run);
  }

  merge(snapshot: EvidenceSnapshot): void {
    for (const item of snapshot.items) this.add(item);
    this.runs.push(...snapshot.runs);
    this.redactions += snapshot.redactions;
    this.dropped += snapshot.dropped;
    this.strings += snapshot.strings;
    for (const secret of snapshot.secrets) if (this.secrets.size < 1000) this.secrets.add(secret);
  }

  /** What was found; the overflow still in memory is spilled first, so a snapshot holds no more than the caps. */
  snapshot(): EvidenceSnapshot {
    this.flushOverflow();
    return {
      items: [...this.items.values()].flatMap((ofKind) => [...ofKind.values()]),
      redactions: this.redactions,
      dropped: this.dropped,
      strings: this.strings,
      secrets: [...this.secrets],
      runs: [...this.runs],
      unlistedElsewhere: [],
    };
  }
}
