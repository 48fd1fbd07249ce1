import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { EvidenceItem } from '../analyze/evidence.ts';
import { EVIDENCE_KINDS } from '../analyze/extract.ts';
import { type MergeKind, type MergeSource, newWasmMerge, type Refill } from '../analyze/wasm/merge-wasm.ts';
import { openRuns, writeItemRecord } from './spill.ts';

/**
 * The resolve of overflow runs (overflow.ts) on two threads: the main thread merges the keys below
 * a split key, a scan worker those from it on, each with merge.c bounded to its part, and the main
 * thread feeds both parts' events to the one Resolution.
 *
 * Why: on eight text-dense cores the resolve reads about 750 MB of runs (12 M records) on the main
 * thread alone, two seconds in which the other cores had nothing to do.
 *
 * Why the result is the same as one merge's: merge.c emits a superset of the keys that can change
 * the result, and every part's filters stay on the safe side of that (its top heaps hold only keys
 * of its own part, which come before the key at hand; the promoted heap's worst is shared, and where
 * it may have come from the other part a full tie is emitted, see merge.c's set_threshold); what
 * JavaScript does with a key does not depend on the order the keys come in (bounded heaps over a
 * total order; Resolution.finish lays its additions out in key order).
 *
 * The split key is where the runs' bytes are cut (MAIN_SHARE below), from records sampled in the middle of the runs
 * (a run has no index: a sample is a place where a few records in a row parse and come in order).
 * A sample at a place that is not a record's start would make the worker read garbage: it takes
 * CHAIN records in a row that each parse (a length under MAX_KEY_BYTES, whose two high bytes are
 * zero and so cannot be text; a count; an encoding of 0 or 1; a known kind, NUL, a value without
 * NUL) and come in key order, which text, counts and headers cut at another place do not give.
 * Where the split key lies only costs balance: each part reads its sources whole within its bounds.
 */

export interface ResolvePart {
  sources: MergeSource[];
  /** Per source: its run file, or undefined for a dump's kept values (in `kept`). */
  paths: Array<string | undefined>;
  /** Per run source: where the part starts reading (a record boundary below `lo`). */
  starts: number[];
  /** Per kept source: its records from `lo` on, laid out as a run's (count: the item's index). */
  kept: Array<Uint8Array | undefined>;
  lo: Uint8Array;
  dumps: number;
  total: number;
  top: number;
  kinds: MergeKind[];
  bufferBytes: number;
  /** The promoted heap's worst as the main thread last set it, and the batches it fed (PartChannel). */
  channel: SharedArrayBuffer;
  stepKeys: number;
}

export interface Split {
  /** The first key of the worker's part. */
  key: Buffer;
  /** Per source (as in MergeSources.paths): where the worker's part starts reading. */
  starts: number[];
}

/**
 * The main thread's share of the runs' bytes: besides its part it lays out the kept values its part
 * reads and does what JavaScript does with both parts' events (half of them: the worker then waited
 * half a second of two for it, on eight text-dense cores).
 */
const MAIN_SHARE = 0.4;
const SAMPLES_PER_RUN = 8;
const SAMPLE_WINDOW = 64 * 1024;
/** Runs too small for a window this long are read by a part from their start. */
const MIN_SAMPLE_WINDOW = 512;
/** Records in a row that must parse, in order, for a place to count as a record boundary. */
const CHAIN = 4;
/** No key is longer: extract.ts clips a value at 512 characters (at most 3 bytes each) after its kind. */
const MAX_KEY_BYTES = 2048;
const KINDS = new Set<string>(EVIDENCE_KINDS);

/** The key of the record at `at` in `window`, or undefined where no record can start there. */
function recordAt(window: Buffer, at: number): { key: Buffer; end: number } | undefined {
  if (at + 9 > window.length) return undefined;
  const length = window.readUInt32LE(at);
  if (length < 2 || length > MAX_KEY_BYTES || window.readUInt32LE(at + 4) === 0 || window[at + 8]! > 1)
    return undefined;
  const end = at + 9 + length;
  if (end > window.length) return undefined;
  const key = window.subarray(at + 9, end);
  // A kind's name, then NUL, then a value with no NUL in it.
  const nul = key.indexOf(0);
  if (nul < 1 || !KINDS.has(key.toString('latin1', 0, nul)) || key.indexOf(0, nul + 1) >= 0) return undefined;
  return { key, end };
}

/** The first place in the window where CHAIN records parse and come in key order. */
export function boundaryIn(window: Buffer): { at: number; key: Buffer } | undefined {
  for (let at = 0; at + 9 < window.length; at++) {
    const first = recordAt(window, at);
    if (!first) continue;
    let previous = first;
    let chained = 1;
    for (; chained < CHAIN; chained++) {
      const next = recordAt(window, previous.end);
      if (!next || Buffer.compare(previous.key, next.key) > 0) break;
      previous = next;
    }
    if (chained === CHAIN) return { at, key: Buffer.from(first.key) };
  }
  return undefined;
}

/**
 * Where to split the runs' keys in two parts by bytes (MAIN_SHARE below), and where in each run the
 * upper part may start reading; undefined when the runs are too small to be worth it (below `minBytes` in all).
 */
export function splitRuns(paths: ReadonlyArray<string | undefined>, minBytes: number): Split | undefined {
  const samples: Array<{ source: number; at: number; key: Buffer; weight: number }> = [];
  let total = 0;
  const window = Buffer.allocUnsafe(SAMPLE_WINDOW);
  paths.forEach((path, source) => {
    if (path === undefined) return;
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      total += size;
      const span = Math.min(SAMPLE_WINDOW, Math.floor(size / SAMPLES_PER_RUN));
      if (span < MIN_SAMPLE_WINDOW) return;
      for (let k = 1; k < SAMPLES_PER_RUN; k++) {
        const offset = Math.floor((size * k) / SAMPLES_PER_RUN);
        const got = readSync(fd, window, 0, span, offset);
        const found = boundaryIn(window.subarray(0, got));
        if (found) samples.push({ source, at: offset + found.at, key: found.key, weight: size });
      }
    } finally {
      closeSync(fd);
    }
  });
  if (total < minBytes || samples.length === 0) return undefined;
  samples.sort((a, b) => Buffer.compare(a.key, b.key));
  const cut = samples.reduce((sum, s) => sum + s.weight, 0) * MAIN_SHARE;
  let seen = 0;
  let middle = samples.length - 1;
  for (let i = 0; i < samples.length; i++) {
    seen += samples[i]!.weight;
    if (seen >= cut) {
      middle = i;
      break;
    }
  }
  const key = samples[middle]!.key;
  const starts = paths.map(() => 0);
  for (const s of samples)
    if (Buffer.compare(s.key, key) < 0) starts[s.source] = Math.max(starts[s.source]!, s.at);
  return { key, starts };
}

/** A dump's kept items from `lo` on (sorted as merge.c reads them), laid out as a run's records. */
export function keptFrom(items: readonly EvidenceItem[], lo: Buffer): Uint8Array {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const { kind, value } = items[mid]!;
    if (Buffer.compare(Buffer.from(`${kind}\u0000${value}`, 'utf8'), lo) < 0) low = mid + 1;
    else high = mid;
  }
  // Measured, then written in place: no buffer per item (sixty thousand a dump).
  let bytes = 0;
  for (let i = low; i < items.length; i++)
    bytes += 10 + items[i]!.kind.length + Buffer.byteLength(items[i]!.value);
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (let i = low; i < items.length; i++) at += writeItemRecord(out, at, items[i]!.kind, items[i]!.value, i);
  return out;
}

/**
 * What the two parts of a shared resolve tell each other through shared memory: the promoted
 * heap's worst, written by the main thread as it feeds events and read by the worker before each
 * step (a sequence lock: the version is odd while it is written; a read that saw it change is made
 * again); and how many of the worker's event batches are posted and fed, so that the worker waits
 * while MAX_UNFED are (on one dump every key is a candidate until the promoted heap fills, and the
 * worker, ahead of the main thread, posted tens of megabytes of them before the worst reached it).
 */
export class PartChannel {
  readonly buffer: SharedArrayBuffer;
  /** [version, batches posted, batches fed, cancelled]. */
  private readonly counters: Int32Array;
  private readonly values: Float64Array;

  /** A new one, with no worst yet (a rank of minus infinity: merge.c filters nothing by it). */
  static create(): PartChannel {
    const channel = new PartChannel(new SharedArrayBuffer(48));
    channel.values[0] = Number.NEGATIVE_INFINITY;
    return channel;
  }

  /** A view of one made by create(), on another thread. */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.counters = new Int32Array(buffer, 0, 4);
    this.values = new Float64Array(buffer, 16, 3);
  }

  write(worst: { rank: number; dumps: number; occurrences: number }): void {
    Atomics.add(this.counters, 0, 1);
    this.values[0] = worst.rank;
    this.values[1] = worst.dumps;
    this.values[2] = worst.occurrences;
    Atomics.add(this.counters, 0, 1);
  }

  read(): { rank: number; dumps: number; occurrences: number } {
    for (;;) {
      const before = Atomics.load(this.counters, 0);
      const [rank, dumps, occurrences] = [this.values[0]!, this.values[1]!, this.values[2]!];
      if (before % 2 === 0 && Atomics.load(this.counters, 0) === before) return { rank, dumps, occurrences };
    }
  }

  /** The worker posted a batch. */
  posted(): void {
    Atomics.add(this.counters, 1, 1);
  }

  /** The main thread fed `n` batches. */
  fed(n: number): void {
    if (n === 0) return;
    Atomics.add(this.counters, 2, n);
    Atomics.notify(this.counters, 2);
  }

  /** The main thread's part failed: the worker is to stop, and not wait for a feed that will not come. */
  cancel(): void {
    Atomics.store(this.counters, 3, 1);
    Atomics.notify(this.counters, 2);
  }

  get cancelled(): boolean {
    return Atomics.load(this.counters, 3) === 1;
  }

  /** Blocks the worker while `max` batches or more wait to be fed; throws once cancelled. */
  waitForRoom(max: number): void {
    for (;;) {
      if (this.cancelled) throw new Error('overflow merge: the main thread’s part failed');
      const fed = Atomics.load(this.counters, 2);
      if (Atomics.load(this.counters, 1) - fed < max) return;
      Atomics.wait(this.counters, 2, fed, 100);
    }
  }
}

/** Event batches (each at most merge.c's 1 MiB out area) the worker may have posted and not seen fed. */
const MAX_UNFED = 4;

/**
 * The worker's part of a shared resolve: merges its sources from their starts, keys from `lo` on,
 * and hands each step's events to `onEvents` (a copy the caller may transfer). Deletes each run it
 * read to its end, off this thread's way (the main thread's part stops short of the end).
 */
export async function resolvePart(part: ResolvePart, onEvents: (events: Uint8Array) => void): Promise<void> {
  const runs = openRuns(part.paths, { starts: part.starts });
  const keptAt = part.kept.map(() => 0);
  const refill: Refill = (source, memory, at, max) => {
    const kept = part.kept[source];
    if (!kept) return runs.read(source, memory, at, max);
    const n = Math.min(max, kept.length - keptAt[source]!);
    memory.set(kept.subarray(keptAt[source]!, keptAt[source]! + n), at);
    keptAt[source]! += n;
    return n;
  };
  try {
    const merge = newWasmMerge(
      {
        premerge: false,
        sources: part.sources,
        bufferBytes: part.bufferBytes,
        dumps: part.dumps,
        total: part.total,
        top: part.top,
        kinds: part.kinds,
        bounds: { lo: part.lo },
      },
      refill,
    );
    if (!merge) throw new Error('overflow merge: WebAssembly is not available on this thread');
    const channel = new PartChannel(part.channel);
    for (;;) {
      channel.waitForRoom(MAX_UNFED);
      merge.setThreshold(channel.read());
      const events = merge.step(part.stepKeys);
      if (!events) break;
      if (events.length === 0) continue;
      channel.posted();
      onEvents(new Uint8Array(events));
    }
  } finally {
    await runs.close();
  }
}
