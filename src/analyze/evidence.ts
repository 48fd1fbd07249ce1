import { type EvidenceKind, extractEvidence } from './extract.ts';
import { redact } from './redact.ts';
import type { StringEncoding } from './strings.ts';

/**
 * Counts the evidence found in one dump (or one range of it). Values are redacted before they are
 * stored, so a secret is never held past the string it was found in.
 *
 * Memory is bounded, counts are not cut: the first MAX_DISTINCT_PER_KIND distinct values of a
 * kind (and MAX_STORED_CHARS characters in all) are counted here, as objects; every later distinct
 * value goes to an overflow map of key → count, which, each time it holds MAX_OVERFLOW_CHARS
 * characters, is sorted by key and handed to the spill port (a run file on disk; see
 * src/evidence/spill.ts). Nothing is dropped on account of where it lies in memory: after the
 * scan, the runs of every dump are merged in key order with the values kept here (see
 * src/evidence/overflow.ts), which makes each count exact and finds the values that recur across
 * dumps, however many others there are. Keys rather than hashes are spilled: a sorted run of the
 * keys themselves gives the exact values back in the same pass that finds them, with no
 * collisions and no second scan of the dumps (a gzip read twice costs more than the disk).
 *
 * Without a spill port (or once the port refuses: its byte budget spent, the disk full), overflow
 * values are dropped and counted in `dropped`; the report then marks what they could have changed
 * as a lower bound.
 */

export const MAX_DISTINCT_PER_KIND = 20_000;
/** And at most this many characters of distinct values in all, so unique strings cannot fill memory. */
export const MAX_STORED_CHARS = 4 * 1024 * 1024;
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
}

export const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** How many strings (of at most MAX_RECENT_LENGTH characters: 4 MiB at most) onString remembers the yield of. */
const MAX_RECENT = 4096;
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
  private readonly items = new Map<string, EvidenceItem>();
  private readonly perKind = new Map<EvidenceKind, number>();
  redactions = 0;
  dropped = 0;
  strings = 0;
  private readonly secrets = new Set<string>();
  private storedChars = 0;
  private readonly spill: OverflowSpill | undefined;
  private readonly overflow = new Map<string, { count: number; encoding: StringEncoding }>();
  private overflowChars = 0;
  private readonly runs: string[] = [];

  constructor(options: { spill?: OverflowSpill } = {}) {
    this.spill = options.spill;
  }

  /**
   * What recent strings yielded, for strings that held no secret: a dump holds the same URL or
   * request line in hundreds of buffers, and each copy would run the extractors and the redaction
   * rules again. Cleared when full; a string with a secret in it is never kept here.
   */
  private readonly recent = new Map<string, Array<[EvidenceKind, string]>>();

  /** The StringSink: feed every printable string found in the dump. */
  readonly onString = (text: string, _offset: number, encoding: StringEncoding): void => {
    this.strings++;
    const known = this.recent.get(text);
    if (known) {
      for (const [kind, value] of known) this.add({ kind, value, count: 1, encoding });
      return;
    }
    const found: Array<[EvidenceKind, string]> = [];
    let secretFree = true;
    extractEvidence(text, encoding, (kind, raw) => {
      const { text: value, count, secrets } = redact(raw);
      if (count > 0) secretFree = false;
      this.redactions += count;
      for (const secret of secrets) if (this.secrets.size < 1000) this.secrets.add(secret);
      this.add({ kind, value, count: 1, encoding });
      found.push([kind, value]);
    });
    if (secretFree && text.length <= MAX_RECENT_LENGTH) {
      if (this.recent.size >= MAX_RECENT) this.recent.clear();
      this.recent.set(text, found);
    }
  };

  add(item: EvidenceItem): void {
    const key = evidenceKey(item.kind, item.value);
    const existing = this.items.get(key);
    if (existing) {
      existing.count += item.count;
      return;
    }
    const n = this.perKind.get(item.kind) ?? 0;
    if (n >= MAX_DISTINCT_PER_KIND || this.storedChars + item.value.length > MAX_STORED_CHARS) {
      this.addOverflow(key, item.count, item.encoding);
      return;
    }
    this.perKind.set(item.kind, n + 1);
    this.storedChars += item.value.length;
    this.items.set(key, { ...item });
  }

  private addOverflow(key: string, count: number, encoding: StringEncoding): void {
    if (!this.spill) {
      this.dropped += count;
      return;
    }
    const entry = this.overflow.get(key);
    if (entry) {
      entry.count += count;
      return;
    }
    this.overflow.set(key, { count, encoding });
    this.overflowChars += key.length;
    if (this.overflowChars >= MAX_OVERFLOW_CHARS) this.flushOverflow();
  }

  /** Spills the overflow map as one sorted run. */
  private flushOverflow(): void {
    if (this.overflow.size === 0) return;
    const entries: OverflowEntry[] = [];
    for (const [key, { count, encoding }] of this.overflow) entries.push([key, count, encoding]);
    this.overflow.clear();
    this.overflowChars = 0;
    entries.sort((a, b) => byKey(a[0], b[0]));
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
      items: [...this.items.values()],
      redactions: this.redactions,
      dropped: this.dropped,
      strings: this.strings,
      secrets: [...this.secrets],
      runs: [...this.runs],
      unlistedElsewhere: [],
    };
  }
}
