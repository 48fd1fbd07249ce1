import { type EvidenceKind, extractEvidence } from './extract.ts';
import { redact } from './redact.ts';
import type { StringEncoding } from './strings.ts';

/**
 * Counts the evidence found in one dump (or one range of it). Values are redacted before they are
 * stored, so a secret is never held past the string it was found in. Distinct values per kind are
 * capped so a core full of unique strings cannot exhaust memory; what was dropped is counted.
 */

export const MAX_DISTINCT_PER_KIND = 50_000;
/** And at most this many characters of distinct values in all, so unique strings cannot fill memory. */
export const MAX_STORED_CHARS = 16 * 1024 * 1024;

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
  dropped: number;
  strings: number;
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
    const key = `${item.kind}\u0000${item.value}`;
    const existing = this.items.get(key);
    if (existing) {
      existing.count += item.count;
      return;
    }
    const n = this.perKind.get(item.kind) ?? 0;
    if (n >= MAX_DISTINCT_PER_KIND || this.storedChars + item.value.length > MAX_STORED_CHARS) {
      this.dropped += item.count;
      return;
    }
    this.perKind.set(item.kind, n + 1);
    this.storedChars += item.value.length;
    this.items.set(key, { ...item });
  }

  merge(snapshot: EvidenceSnapshot): void {
    for (const item of snapshot.items) this.add(item);
    this.redactions += snapshot.redactions;
    this.dropped += snapshot.dropped;
    this.strings += snapshot.strings;
    for (const secret of snapshot.secrets) if (this.secrets.size < 1000) this.secrets.add(secret);
  }

  snapshot(): EvidenceSnapshot {
    return {
      items: [...this.items.values()],
      redactions: this.redactions,
      dropped: this.dropped,
      strings: this.strings,
      secrets: [...this.secrets],
    };
  }
}
