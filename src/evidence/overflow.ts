import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { isFurniture, KIND_WEIGHT, streamReasons } from '../analyze/correlate.ts';
import { byKey, type EvidenceItem, type EvidenceSnapshot, evidenceKey } from '../analyze/evidence.ts';
import { EVIDENCE_KINDS, type EvidenceKind } from '../analyze/extract.ts';
import type { StringEncoding } from '../analyze/strings.ts';
import {
  type MergeKind,
  type MergeSource,
  newWasmMerge,
  type Refill,
  type WasmMerge,
  wasmMergeAvailable,
} from '../analyze/wasm/merge-wasm.ts';
import { keptFrom, PartChannel, type ResolvePart, type Split, splitRuns } from './overflow-split.ts';
import {
  dropRecycled,
  openRuns,
  RunReader,
  RunWriter,
  recycleRuns,
  runPath,
  type SpillConfig,
  writeItemRecord,
} from './spill.ts';

/**
 * After the scan: the overflow runs of every dump (values past the collectors' in-memory caps, see
 * EvidenceCollector) are merged in key order, together with the values each dump kept in memory,
 * in one streaming pass. For each distinct value it then knows, exactly, in which dumps it is and
 * how often; memory holds one record per run being read, and what is kept below.
 *
 * - A value a dump kept in memory gets the occurrences that dump spilled added to its count.
 * - A value in two dumps or more (or, alone, a request line or an exception, which a report shows
 *   from one dump; or anything when there is only one dump) that some dump holds only in its runs
 *   is a candidate for the report: the MAX_PROMOTED most telling (ranked as correlate ranks them:
 *   kind, share of dumps, stream-likeness, furniture; then by occurrences) are added to the
 *   evidence of every dump that holds them, with their exact counts, so the report says "in k of
 *   N" for them as for any other value.
 * - Each dump's TOP_PER_KIND most frequent spilled values of each kind are added to its evidence
 *   too, so its own list of most frequent values is exact.
 * - A candidate that does not make the cut, but that some dump kept in memory, would show in fewer
 *   dumps than hold it: its key is listed in those dumps' unlistedElsewhere, and the report marks
 *   its count as a lower bound.
 * - Where a dump's runs give one key several encodings, the first source's wins (sources in order:
 *   each dump's kept values, then its runs in the order they were written).
 *
 * Runs are merged down first (MERGE_FAN_IN at a time) until at most MAX_OPEN_RUNS are open at once.
 *
 * Two engines give the same result. 'wasm' (the default) merges in WebAssembly (merge.c), which
 * compares the records as bytes where they were read and hands this code only the keys that can
 * change something (see merge.c): on eight text-dense cores, 12 M records, of which JavaScript
 * made a string, a comparison and a heap step each, on the main thread alone. 'js' merges here,
 * every key; it is the reference the other is tested against, and the fallback where WebAssembly
 * does not load. What is done with a key is the same code for both (Resolution).
 *
 * The pass yields to the event loop every YIELD_EVERY values: the bot runs it beside Slack.
 */

export const MAX_PROMOTED = 10_000;
export const TOP_PER_KIND = 200;
const MAX_OPEN_RUNS = 256;
const MERGE_FAN_IN = 64;
const YIELD_EVERY = 20_000;
/** Read buffer of each source of the WebAssembly merge: 256 runs hold 16 MiB, as RunReaders do. */
const WASM_READ_BUFFER = 64 * 1024;

export interface ResolveOptions {
  /** Where the merge runs (see the comment at the top). Default 'wasm', or 'js' where it does not load. */
  engine?: 'wasm' | 'js';
  /**
   * Runs a part of the resolve on another thread (a scan worker: overflow-split.ts's resolvePart),
   * handing its events back as they come. Without it, or below `shareFromBytes` of runs, the main
   * thread merges every key itself.
   */
  share?: (part: ResolvePart, onEvents: (events: Uint8Array) => void) => Promise<void>;
  /** Runs' bytes from which the resolve is shared (SHARE_FROM_BYTES); tests set it to 0. */
  shareFromBytes?: number;
}

/** Below this much in runs, the resolve takes less than a worker's round trip saves. */
const SHARE_FROM_BYTES = 32 * 1024 * 1024;

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A sorted stream of (key, count): a run on disk or the values a dump kept in memory. */
interface Source {
  key: string;
  count: number;
  encoding: StringEncoding;
  dump: number;
  /** Place among the sources: equal keys are taken in this order. */
  order: number;
  /** The in-memory item, when the source is a dump's kept values. */
  item: EvidenceItem | undefined;
  advance(): boolean;
}

/** A source whose `advance` is `next`, which fills the source's fields or says there is no more. */
function newSource(dump: number, order: number, next: (source: Source) => boolean): Source {
  const source: Source = {
    key: '',
    count: 0,
    encoding: 'ascii',
    dump,
    order,
    item: undefined,
    advance: () => next(source),
  };
  return source;
}

function runSource(path: string, dump: number, order: number): Source {
  const reader = new RunReader(path);
  return newSource(dump, order, (source) => {
    if (!reader.next()) return false;
    source.key = reader.key;
    source.count = reader.count;
    source.encoding = reader.encoding;
    return true;
  });
}

/** A dump's kept items with their keys, in key order. */
function sortKept(items: readonly EvidenceItem[]): Array<readonly [string, EvidenceItem]> {
  const sorted = items.map((item) => [evidenceKey(item.kind, item.value), item] as const);
  sorted.sort((a, b) => byKey(a[0], b[0]));
  return sorted;
}

/**
 * The order of evidenceKey(kind, value) without making the key: kinds are letters, and where one
 * is a prefix of another ('env', 'environment') the NUL after it sorts first, as the shorter does.
 */
const byKindValue = (a: EvidenceItem, b: EvidenceItem) =>
  a.kind === b.kind ? byKey(a.value, b.value) : byKey(a.kind, b.kind);

function keptSource(
  sorted: ReadonlyArray<readonly [string, EvidenceItem]>,
  dump: number,
  order: number,
): Source {
  let at = -1;
  return newSource(dump, order, (source) => {
    at++;
    const next = sorted[at];
    if (!next) return false;
    [source.key, source.item] = next;
    source.count = next[1].count;
    source.encoding = next[1].encoding;
    return true;
  });
}
/** A binary heap; `before(a, b)` true when a belongs nearer the root. Bounded when given a capacity. */
class Heap<T> {
  readonly items: T[] = [];
  private readonly before: (a: T, b: T) => boolean;
  private readonly capacity: number;
  constructor(before: (a: T, b: T) => boolean, capacity = Number.POSITIVE_INFINITY) {
    this.before = before;
    this.capacity = capacity;
  }

  get size(): number {
    return this.items.length;
  }

  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      this.down(0);
    }
    return top;
  }

  /** The root changed (it was advanced): restore the order. */
  down(i: number): void {
    const a = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.before(a[l]!, a[m]!)) m = l;
      if (r < a.length && this.before(a[r]!, a[m]!)) m = r;
      if (m === i) return;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
  }

  /**
   * Keeps the `capacity` best (the root is the worst kept). Returns what was let go: the worst
   * kept, pushed out by x, or x itself; undefined while there is room.
   */
  offer(x: T): T | undefined {
    if (this.items.length < this.capacity) {
      this.push(x);
      return undefined;
    }
    const root = this.items[0]!;
    if (!this.before(root, x)) return x;
    this.items[0] = x;
    this.down(0);
    return root;
  }
}

const byKeyFirst = (a: Source, b: Source) => a.key < b.key || (a.key === b.key && a.order < b.order);

/** Merges runs of one dump into one (counts of a key summed, the first run's encoding); the runs go to recycleRuns. */
async function mergeRuns(paths: readonly string[], config: SpillConfig): Promise<string> {
  const out = new RunWriter(runPath(config));
  const heap = new Heap<Source>(byKeyFirst);
  let merged = false;
  try {
    paths.forEach((path, order) => {
      const source = runSource(path, 0, order);
      if (source.advance()) heap.push(source);
    });
    let n = 0;
    while (heap.size > 0) {
      const top = heap.items[0]!;
      const key = top.key;
      const encoding = top.encoding;
      let count = 0;
      while (heap.size > 0 && heap.items[0]!.key === key) {
        const s = heap.items[0]!;
        count += s.count;
        if (s.advance()) heap.down(0);
        else heap.pop();
      }
      out.add(key, count, encoding);
      if (++n % YIELD_EVERY === 0) await yieldToEventLoop();
    }
    merged = true;
  } finally {
    out.close();
    if (!merged) rmSync(out.path, { force: true });
  }
  recycleRuns(config, paths);
  return out.path;
}

/** Keys a WebAssembly step takes at most: a few milliseconds between yields to the event loop. */
const WASM_STEP_KEYS = 16_384;

/** mergeRuns in WebAssembly: the same run, byte for byte. */
async function mergeRunsWasm(paths: readonly string[], config: SpillConfig): Promise<string> {
  const runs = openRuns(paths, { deleteRead: false });
  const path = runPath(config);
  let fd: number | undefined;
  try {
    const merge = newWasmMerge(
      {
        premerge: true,
        sources: paths.map(() => ({ dump: 0, kept: false })),
        bufferBytes: WASM_READ_BUFFER,
        dumps: 1,
        total: 1,
        top: 0,
        kinds: [],
      },
      runs.read,
    )!;
    fd = openSync(path, 'w');
    for (;;) {
      const records = merge.step(WASM_STEP_KEYS);
      if (!records) break;
      for (let done = 0; done < records.length; ) done += writeSync(fd, records, done, records.length - done);
      await yieldToEventLoop();
    }
  } catch (error) {
    rmSync(path, { force: true });
    throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
    await runs.close();
  }
  recycleRuns(config, paths);
  return path;
}

/**
 * Merges the runs a thread wrote of one dump into one, right after its scan, on that thread: the
 * merge after every scan, on the main thread alone while the other cores wait, then reads a few
 * runs a dump rather than dozens (a text-dense core of 300 MB leaves about fifty) and merges none
 * down first. Where that merge fails (the disk full), the runs are left as they were.
 */
export async function compactRuns(
  runs: readonly string[],
  config: SpillConfig,
  options: ResolveOptions = {},
): Promise<string[]> {
  if (runs.length <= 1) return [...runs];
  const wasm = options.engine !== 'js' && wasmMergeAvailable();
  try {
    return [await (wasm ? mergeRunsWasm : mergeRuns)(runs, config)];
  } catch {
    return [...runs];
  }
}

interface Candidate {
  key: string;
  kind: EvidenceKind;
  value: string;
  dumps: number;
  occurrences: number;
  rank: number;
  /** Dumps that hold it only in their runs: [dump, count, encoding]. */
  spilled: Array<[number, number, StringEncoding]>;
  /** Dumps that kept it in memory. */
  kept: number[];
}

/**
 * correlate()'s score, less what needs the whole report (requested paths, executables). merge.c
 * bounds it from above (rank_bound): change both together.
 */
function rank(kind: EvidenceKind, value: string, dumps: number, total: number): number {
  let score = KIND_WEIGHT[kind] * (0.5 + dumps / total);
  if (streamReasons(kind, value).length > 0) score *= 1.6;
  if (isFurniture(kind, value)) score *= 0.3;
  else if (total >= 3 && dumps === total) score *= 0.75;
  return score;
}

const worseCandidate = (a: Candidate, b: Candidate) =>
  a.rank < b.rank ||
  (a.rank === b.rank &&
    (a.dumps < b.dumps ||
      (a.dumps === b.dumps &&
        (a.occurrences < b.occurrences || (a.occurrences === b.occurrences && a.key > b.key)))));

/** worseCandidate(a, b) with b's fields given apart, so no object is made to ask. */
const worseThan = (a: Candidate, rank: number, dumps: number, occurrences: number, key: string) =>
  a.rank < rank ||
  (a.rank === rank &&
    (a.dumps < dumps ||
      (a.dumps === dumps &&
        (a.occurrences < occurrences || (a.occurrences === occurrences && a.key > key)))));

type Top = { key: string; item: EvidenceItem };
const worseTop = (a: Top, b: Top) =>
  a.item.count < b.item.count || (a.item.count === b.item.count && a.key > b.key);

/**
 * What is done with each key, in key order, whichever engine merged it: begin(), then per dump in
 * ascending order kept() and/or spilled(), then end(). At the end, finish() changes the snapshots.
 */
class Resolution {
  private readonly snapshots: readonly EvidenceSnapshot[];
  private readonly total: number;
  readonly promoted = new Heap<Candidate>(worseCandidate, MAX_PROMOTED);
  private readonly tops: Array<Map<EvidenceKind, Heap<Top>>>;
  private readonly unlisted: string[][];
  private readonly spilledCount: number[];
  private readonly spilledEncoding: StringEncoding[];
  /** Of the key at hand: occurrences per dump that spilled it, and the scratch lists. */
  private readonly heldCount: number[];
  // Scratch lists, reused for every key: only what a candidate keeps is allocated for it.
  private readonly keptDumps: number[] = [];
  private readonly keptItems: EvidenceItem[] = [];
  private readonly touched: number[] = [];
  private readonly spilledDumps: number[] = [];

  constructor(snapshots: readonly EvidenceSnapshot[]) {
    this.snapshots = snapshots;
    this.total = snapshots.length;
    this.tops = snapshots.map(() => new Map<EvidenceKind, Heap<Top>>());
    this.unlisted = snapshots.map(() => [] as string[]);
    this.spilledCount = new Array<number>(this.total).fill(0);
    this.spilledEncoding = new Array<StringEncoding>(this.total).fill('ascii');
    this.heldCount = new Array<number>(this.total).fill(0);
  }

  /** The candidate a new one must beat, once the promoted heap is full. */
  get worst(): Candidate | undefined {
    return this.promoted.size >= MAX_PROMOTED ? this.promoted.items[0] : undefined;
  }

  begin(): void {
    this.keptDumps.length = 0;
    this.keptItems.length = 0;
    this.touched.length = 0;
  }

  kept(dump: number, item: EvidenceItem): void {
    this.keptDumps.push(dump);
    this.keptItems.push(item);
  }

  spilled(dump: number, count: number, encoding: StringEncoding): void {
    if (this.spilledCount[dump] === 0) {
      this.touched.push(dump);
      this.spilledEncoding[dump] = encoding;
    }
    this.spilledCount[dump]! += count;
  }

  /** `key` is the key, or makes it: called only when it is needed. */
  end(key: string | (() => string)): void {
    const { keptDumps, keptItems, touched, spilledDumps, spilledCount, heldCount } = this;
    if (touched.length === 0) return;
    // Occurrences a dump spilled of a value it also kept belong to the kept item.
    for (let i = 0; i < keptDumps.length; i++) {
      keptItems[i]!.count += spilledCount[keptDumps[i]!]!;
      spilledCount[keptDumps[i]!] = 0;
    }
    spilledDumps.length = 0;
    for (const dump of touched) {
      const count = spilledCount[dump]!;
      spilledCount[dump] = 0;
      if (count > 0) {
        spilledDumps.push(dump);
        heldCount[dump] = count;
      }
    }
    if (spilledDumps.length === 0) return;
    const text = typeof key === 'string' ? key : key();
    const cut = text.indexOf('\u0000');
    const kind = text.slice(0, cut) as EvidenceKind;
    const value = text.slice(cut + 1);
    for (const dump of spilledDumps) {
      const count = heldCount[dump]!;
      let top = this.tops[dump]!.get(kind);
      if (!top) {
        top = new Heap<Top>(worseTop, TOP_PER_KIND);
        this.tops[dump]!.set(kind, top);
      }
      // Most values do not make a full top: tested before an item is made for them.
      const root = top.items[0];
      if (
        root &&
        top.size >= TOP_PER_KIND &&
        (count < root.item.count || (count === root.item.count && text > root.key))
      )
        continue;
      top.offer({ key: text, item: { kind, value, count, encoding: this.spilledEncoding[dump]! } });
    }
    const dumps = keptDumps.length + spilledDumps.length;
    if (dumps < 2 && this.total > 1 && kind !== 'request' && kind !== 'exception') return;
    let occurrences = 0;
    for (const item of keptItems) occurrences += item.count;
    for (const dump of spilledDumps) occurrences += heldCount[dump]!;
    const score = rank(kind, value, dumps, this.total);
    // Most candidates do not make a full heap: tested before one is made. Made and let go, a
    // million of them (and their lists) were allocated straight into the old generation once V8
    // saw the first ten thousand survive (pretenuring), and collecting them took most of this pass.
    const promoted = this.promoted;
    const worst = promoted.items[0];
    if (worst && promoted.size >= MAX_PROMOTED && !worseThan(worst, score, dumps, occurrences, text)) {
      for (const dump of keptDumps) this.unlisted[dump]!.push(text);
      return;
    }
    const candidate: Candidate = {
      key: text,
      kind,
      value,
      dumps,
      occurrences,
      rank: score,
      spilled: spilledDumps.map((dump): [number, number, StringEncoding] => [
        dump,
        heldCount[dump]!,
        this.spilledEncoding[dump]!,
      ]),
      kept: [...keptDumps],
    };
    const left = promoted.offer(candidate);
    if (left) for (const dump of left.kept) this.unlisted[dump]!.push(left.key);
  }

  /**
   * Adds the promoted and top values to the snapshots, and the unlisted keys, each in key order:
   * what the heaps hold does not depend on the order keys came in, and nor does the result (a
   * shared resolve feeds them as its two parts go, see overflow-split.ts).
   */
  finish(): void {
    const { snapshots } = this;
    const added = snapshots.map(() => new Map<string, EvidenceItem>());
    const add = (dump: number, key: string, item: EvidenceItem) => {
      if (!added[dump]!.has(key)) added[dump]!.set(key, item);
    };
    for (const c of this.promoted.items)
      for (const [dump, count, encoding] of c.spilled)
        add(dump, c.key, { kind: c.kind, value: c.value, count, encoding });
    this.tops.forEach((byKind, dump) => {
      for (const top of byKind.values()) for (const { key, item } of top.items) add(dump, key, item);
    });
    snapshots.forEach((snapshot, dump) => {
      for (const [, item] of [...added[dump]!].sort((a, b) => byKey(a[0], b[0]))) snapshot.items.push(item);
      snapshot.unlistedElsewhere.push(...this.unlisted[dump]!.sort(byKey));
    });
  }
}

/** The JavaScript merge: every key of every source, through a heap of strings. */
async function mergeJs(snapshots: readonly EvidenceSnapshot[], resolution: Resolution): Promise<void> {
  const heap = new Heap<Source>(byKeyFirst);
  let order = 0;
  snapshots.forEach((snapshot, dump) => {
    if (snapshot.runs.length === 0 && snapshot.items.length === 0) return;
    const sources = [
      keptSource(sortKept(snapshot.items), dump, order++),
      ...snapshot.runs.map((p) => runSource(p, dump, order++)),
    ];
    for (const source of sources) if (source.advance()) heap.push(source);
  });
  let n = 0;
  while (heap.size > 0) {
    const key = heap.items[0]!.key;
    resolution.begin();
    while (heap.size > 0 && heap.items[0]!.key === key) {
      const s = heap.items[0]!;
      if (s.item) resolution.kept(s.dump, s.item);
      else resolution.spilled(s.dump, s.count, s.encoding);
      if (s.advance()) heap.down(0);
      else heap.pop();
    }
    if (++n % YIELD_EVERY === 0) await yieldToEventLoop();
    resolution.end(key);
  }
}

const ENCODINGS: readonly StringEncoding[] = ['ascii', 'utf16le'];
const NONE = 0xffffffff;
/** The kinds as merge.c bounds their rank (see rank, streamReasons and isFurniture: change them together). */
const MERGE_KINDS: MergeKind[] = EVIDENCE_KINDS.map((name) => ({
  name,
  weight: KIND_WEIGHT[name],
  always: name === 'request' || name === 'exception',
  stream: name === 'url' || name === 'request' ? 'value' : name === 'header' ? 'always' : 'never',
  furniture: name === 'env' || name === 'release' || name === 'environment',
}));

/** The merge's sources: each dump's kept items (one source), then its runs. */
interface MergeSources {
  sources: MergeSource[];
  /** Per source: its run's path, undefined for kept items. */
  paths: Array<string | undefined>;
  /** Each dump's kept items in key order, sorted by kind then value: no key string made for them. */
  kept: EvidenceItem[][];
}

function mergeSources(snapshots: readonly EvidenceSnapshot[]): MergeSources {
  const out: MergeSources = { sources: [], paths: [], kept: [] };
  snapshots.forEach((snapshot, dump) => {
    const empty = snapshot.runs.length === 0 && snapshot.items.length === 0;
    out.kept.push(empty ? [] : [...snapshot.items].sort(byKindValue));
    if (empty) return;
    out.sources.push({ dump, kept: true });
    out.paths.push(undefined);
    for (const path of snapshot.runs) {
      out.sources.push({ dump, kept: false });
      out.paths.push(path);
    }
  });
  return out;
}

/**
 * Lays a kept source's records out for merge.c as they are needed: its items' keys, the count
 * field their index in `kept`. Returns the bytes laid out, or minus the size of an item that does
 * not fit in `max` at all.
 */
function keptLayout({ sources, kept }: MergeSources): Refill {
  /** Per source: the next kept item to lay out. */
  const keptAt = sources.map(() => 0);
  return (source, memory, at, max) => {
    const items = kept[sources[source]!.dump]!;
    const end = at + max;
    let i = keptAt[source]!;
    let to = at;
    for (; i < items.length; i++) {
      const { kind, value } = items[i]!;
      const room = end - to - 9 - kind.length - 1;
      // Most values fit at three bytes a character; a long one near the end is measured.
      const length = value.length * 3 <= room ? undefined : Buffer.byteLength(value, 'utf8');
      if (length !== undefined && length > room) {
        if (to === at) return -(9 + kind.length + 1 + length);
        break;
      }
      to += writeItemRecord(memory, to, kind, value, i);
    }
    keptAt[source] = i;
    return to - at;
  };
}

/** merge.c's events for a batch of keys (see resolve_key there), fed to `resolution`. */
function feedEvents(events: Buffer, kept: readonly EvidenceItem[][], resolution: Resolution): void {
  let keyAt = 0;
  let keyLength = 0;
  const key = () => events.toString('utf8', keyAt, keyAt + keyLength);
  for (let at = 0; at < events.length; ) {
    keyLength = events.readUInt32LE(at);
    const entries = events.readUInt32LE(at + 4);
    keyAt = at + 8;
    at = keyAt + keyLength;
    resolution.begin();
    for (let e = 0; e < entries; e++, at += 20) {
      const dump = events.readUInt32LE(at);
      const index = events.readUInt32LE(at + 4);
      const count = events.readUInt32LE(at + 12) + events.readUInt32LE(at + 16) * 2 ** 32;
      if (index !== NONE) resolution.kept(dump, kept[dump]![index]!);
      if (count > 0) resolution.spilled(dump, count, ENCODINGS[events.readUInt32LE(at + 8)] ?? 'ascii');
    }
    resolution.end(key);
  }
}

/**
 * The WebAssembly merge (merge.c): runs read into its memory, each dump's kept items as one more
 * source laid out there as they are needed; its events fed to `resolution`. Shared with a worker
 * (overflow-split.ts) when the options allow it and the runs are worth it.
 */
async function mergeWasm(
  snapshots: readonly EvidenceSnapshot[],
  resolution: Resolution,
  options: ResolveOptions,
): Promise<void> {
  const merged = mergeSources(snapshots);
  // One dump's every key is a candidate until the promoted heap fills: JavaScript's share of the
  // work outweighs the merge's, and a worker saves little for the memory it takes.
  const split =
    options.share && snapshots.length > 1
      ? splitRuns(merged.paths, options.shareFromBytes ?? SHARE_FROM_BYTES)
      : undefined;
  // Shared, the worker deletes the runs as it reads them to their end; this part stops short.
  const runs = openRuns(merged.paths, { deleteRead: !split });
  let worker: Promise<void> | undefined;
  const channel = PartChannel.create();
  try {
    const layOutKept = keptLayout(merged);
    const refill: Refill = (source, memory, at, max) =>
      merged.paths[source] === undefined
        ? layOutKept(source, memory, at, max)
        : runs.read(source, memory, at, max);
    const merge: WasmMerge = newWasmMerge(
      { ...mergeSetup(merged, snapshots.length), ...(split ? { bounds: { hi: split.key } } : {}) },
      refill,
    )!;
    // The worker's events wait for this part's step to end; once this part is done, each is fed as
    // it comes (an error there is kept for after the worker is done, not thrown into its port).
    const theirs: Uint8Array[] = [];
    let ours = true;
    let fault: unknown;
    const feedTheirs = () => {
      try {
        const batches = theirs.splice(0);
        for (const events of batches) feedEvents(Buffer.from(events), merged.kept, resolution);
        const worst = resolution.worst;
        if (worst) channel.write(worst);
        channel.fed(batches.length);
      } catch (error) {
        fault ??= error;
      }
    };
    if (split && options.share) {
      worker = options.share(workerPart(merged, snapshots.length, split, channel), (events) => {
        theirs.push(events);
        if (!ours) feedTheirs();
      });
      // Its failure is seen below, after this part; meanwhile it must not go unhandled.
      worker.catch(() => {});
    }
    for (;;) {
      feedTheirs();
      const worst = resolution.worst;
      // A worst from the worker's part has a key after all of this part's: a full tie with it is
      // the better, and is emitted (see merge.c's set_threshold).
      if (worst) merge.setThreshold(worst, !split || Buffer.compare(Buffer.from(worst.key), split.key) < 0);
      const events = merge.step(WASM_STEP_KEYS);
      if (!events) break;
      feedEvents(events, merged.kept, resolution);
      await yieldToEventLoop();
    }
    ours = false;
    feedTheirs();
    await worker;
    if (fault !== undefined) throw fault;
  } finally {
    // This part failed (or the worker's did): the worker stops rather than wait to be fed.
    channel.cancel();
    await worker?.catch(() => {});
    await runs.close();
  }
}

/** The worker's part of a shared resolve: the keys from the split key on. */
function workerPart(merged: MergeSources, dumps: number, split: Split, channel: PartChannel): ResolvePart {
  return {
    ...mergeSetup(merged, dumps),
    paths: merged.paths,
    starts: split.starts,
    kept: merged.sources.map((s) => (s.kept ? keptFrom(merged.kept[s.dump]!, split.key) : undefined)),
    lo: split.key,
    channel: channel.buffer,
    stepKeys: WASM_STEP_KEYS,
  };
}

/** What a resolve's merge (either part of it) is told besides its sources' bytes. */
function mergeSetup(merged: MergeSources, dumps: number) {
  return {
    premerge: false,
    sources: merged.sources,
    bufferBytes: WASM_READ_BUFFER,
    dumps,
    total: dumps,
    top: TOP_PER_KIND,
    kinds: MERGE_KINDS,
  };
}

/**
 * Resolves the overflow of a set of dumps analysed together (one snapshot per dump, changed in
 * place; see the comment at the top). Deletes the runs it read.
 */
export async function resolveOverflow(
  snapshots: readonly EvidenceSnapshot[],
  config: SpillConfig,
  options: ResolveOptions = {},
): Promise<void> {
  const withRuns = snapshots.filter((s) => s.runs.length > 0);
  if (withRuns.length === 0) return;
  const wasm = options.engine !== 'js' && wasmMergeAvailable();
  try {
    const perDump = Math.max(1, Math.floor(MAX_OPEN_RUNS / withRuns.length));
    for (const snapshot of withRuns) {
      while (snapshot.runs.length > perDump) {
        const group = snapshot.runs.splice(0, Math.min(MERGE_FAN_IN, snapshot.runs.length - perDump + 1));
        // Until it is merged, the group stays listed, so it is deleted whatever happens.
        snapshot.runs.push(...group);
        const merged = await (wasm ? mergeRunsWasm : mergeRuns)(group, config);
        snapshot.runs.splice(snapshot.runs.length - group.length, group.length, merged);
      }
    }
    const resolution = new Resolution(snapshots);
    await (wasm ? mergeWasm(snapshots, resolution, options) : mergeJs(snapshots, resolution));
    resolution.finish();
  } finally {
    for (const snapshot of snapshots) {
      for (const path of snapshot.runs) rmSync(path, { force: true });
      snapshot.runs = [];
    }
    dropRecycled(config);
  }
}
