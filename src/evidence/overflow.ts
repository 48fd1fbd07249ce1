import { rmSync } from 'node:fs';
import { isFurniture, KIND_WEIGHT, streamReasons } from '../analyze/correlate.ts';
import { byKey, type EvidenceItem, type EvidenceSnapshot, evidenceKey } from '../analyze/evidence.ts';
import type { EvidenceKind } from '../analyze/extract.ts';
import type { StringEncoding } from '../analyze/strings.ts';
import { RunReader, RunWriter, runPath, type SpillConfig } from './spill.ts';

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
 *
 * Runs are merged down first (MERGE_FAN_IN at a time) until at most MAX_OPEN_RUNS are open at once.
 * The pass yields to the event loop every YIELD_EVERY values: the bot runs it beside Slack.
 */

export const MAX_PROMOTED = 10_000;
export const TOP_PER_KIND = 200;
const MAX_OPEN_RUNS = 256;
const MERGE_FAN_IN = 64;
const YIELD_EVERY = 20_000;

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A sorted stream of (key, count): a run on disk or the values a dump kept in memory. */
interface Source {
  key: string;
  count: number;
  encoding: StringEncoding;
  dump: number;
  /** The in-memory item, when the source is a dump's kept values. */
  item: EvidenceItem | undefined;
  advance(): boolean;
}

function runSource(path: string, dump: number): Source {
  const reader = new RunReader(path);
  const source: Source = {
    key: '',
    count: 0,
    encoding: 'ascii',
    dump,
    item: undefined,
    advance() {
      if (!reader.next()) return false;
      source.key = reader.key;
      source.count = reader.count;
      source.encoding = reader.encoding;
      return true;
    },
  };
  return source;
}

function keptSource(items: readonly EvidenceItem[], dump: number): Source {
  const sorted = items.map((item) => [evidenceKey(item.kind, item.value), item] as const);
  sorted.sort((a, b) => byKey(a[0], b[0]));
  let at = -1;
  const source: Source = {
    key: '',
    count: 0,
    encoding: 'ascii',
    dump,
    item: undefined,
    advance() {
      at++;
      const next = sorted[at];
      if (!next) return false;
      [source.key, source.item] = next;
      source.count = next[1].count;
      source.encoding = next[1].encoding;
      return true;
    },
  };
  return source;
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

const byKeyFirst = (a: Source, b: Source) => a.key < b.key || (a.key === b.key && a.dump < b.dump);

/** Merges runs of one dump into one (counts of a key summed) and deletes them. */
async function mergeRuns(paths: readonly string[], config: SpillConfig): Promise<string> {
  const out = new RunWriter(runPath(config));
  const heap = new Heap<Source>(byKeyFirst);
  try {
    for (const path of paths) {
      const source = runSource(path, 0);
      if (source.advance()) heap.push(source);
    }
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
  } finally {
    out.close();
  }
  for (const path of paths) rmSync(path, { force: true });
  return out.path;
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

/** correlate()'s score, less what needs the whole report (requested paths, executables). */
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
 * Resolves the overflow of a set of dumps analysed together (one snapshot per dump, changed in
 * place; see the comment at the top). Deletes the runs it read.
 */
export async function resolveOverflow(
  snapshots: readonly EvidenceSnapshot[],
  config: SpillConfig,
): Promise<void> {
  const withRuns = snapshots.filter((s) => s.runs.length > 0);
  if (withRuns.length === 0) return;
  const perDump = Math.max(1, Math.floor(MAX_OPEN_RUNS / withRuns.length));
  for (const snapshot of withRuns) {
    while (snapshot.runs.length > perDump) {
      const group = snapshot.runs.splice(0, Math.min(MERGE_FAN_IN, snapshot.runs.length - perDump + 1));
      snapshot.runs.push(await mergeRuns(group, config));
    }
  }

  const total = snapshots.length;
  const heap = new Heap<Source>(byKeyFirst);
  snapshots.forEach((snapshot, dump) => {
    if (snapshot.runs.length === 0 && snapshot.items.length === 0) return;
    for (const source of [keptSource(snapshot.items, dump), ...snapshot.runs.map((p) => runSource(p, dump))])
      if (source.advance()) heap.push(source);
  });

  const promoted = new Heap<Candidate>(worseCandidate, MAX_PROMOTED);
  const tops = snapshots.map(() => new Map<EvidenceKind, Heap<Top>>());
  const unlisted = snapshots.map(() => [] as string[]);
  const spilledCount = new Array<number>(total).fill(0);
  const spilledEncoding = new Array<StringEncoding>(total).fill('ascii');
  /** Of the key at hand: occurrences per dump that spilled it, and the scratch lists. */
  const heldCount = new Array<number>(total).fill(0);
  const keptDumps: number[] = [];
  const keptItems: EvidenceItem[] = [];
  const touched: number[] = [];
  const spilledDumps: number[] = [];
  let n = 0;
  while (heap.size > 0) {
    const key = heap.items[0]!.key;
    // Scratch lists, reused for every key: only what a candidate keeps is allocated for it.
    keptDumps.length = 0;
    keptItems.length = 0;
    touched.length = 0;
    while (heap.size > 0 && heap.items[0]!.key === key) {
      const s = heap.items[0]!;
      if (s.item) {
        keptDumps.push(s.dump);
        keptItems.push(s.item);
      } else {
        if (spilledCount[s.dump] === 0) {
          touched.push(s.dump);
          spilledEncoding[s.dump] = s.encoding;
        }
        spilledCount[s.dump]! += s.count;
      }
      if (s.advance()) heap.down(0);
      else heap.pop();
    }
    if (++n % YIELD_EVERY === 0) await yieldToEventLoop();
    if (touched.length === 0) continue;
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
    if (spilledDumps.length === 0) continue;
    const cut = key.indexOf('\u0000');
    const kind = key.slice(0, cut) as EvidenceKind;
    const value = key.slice(cut + 1);
    for (const dump of spilledDumps) {
      const count = heldCount[dump]!;
      let top = tops[dump]!.get(kind);
      if (!top) {
        top = new Heap<Top>(worseTop, TOP_PER_KIND);
        tops[dump]!.set(kind, top);
      }
      // Most values do not make a full top: tested before an item is made for them.
      const root = top.items[0];
      if (
        root &&
        top.size >= TOP_PER_KIND &&
        (count < root.item.count || (count === root.item.count && key > root.key))
      )
        continue;
      top.offer({ key, item: { kind, value, count, encoding: spilledEncoding[dump]! } });
    }
    const dumps = keptDumps.length + spilledDumps.length;
    if (dumps < 2 && total > 1 && kind !== 'request' && kind !== 'exception') continue;
    let occurrences = 0;
    for (const item of keptItems) occurrences += item.count;
    for (const dump of spilledDumps) occurrences += heldCount[dump]!;
    const score = rank(kind, value, dumps, total);
    // Most candidates do not make a full heap: tested before one is made. Made and let go, a
    // million of them (and their lists) were allocated straight into the old generation once V8
    // saw the first ten thousand survive (pretenuring), and collecting them took most of this pass.
    const worst = promoted.items[0];
    if (worst && promoted.size >= MAX_PROMOTED && !worseThan(worst, score, dumps, occurrences, key)) {
      for (const dump of keptDumps) unlisted[dump]!.push(key);
      continue;
    }
    const candidate: Candidate = {
      key,
      kind,
      value,
      dumps,
      occurrences,
      rank: score,
      spilled: spilledDumps.map((dump): [number, number, StringEncoding] => [
        dump,
        heldCount[dump]!,
        spilledEncoding[dump]!,
      ]),
      kept: [...keptDumps],
    };
    const left = promoted.offer(candidate);
    if (left) for (const dump of left.kept) unlisted[dump]!.push(left.key);
  }

  const added = snapshots.map(() => new Set<string>());
  const add = (dump: number, key: string, item: EvidenceItem) => {
    if (added[dump]!.has(key)) return;
    added[dump]!.add(key);
    snapshots[dump]!.items.push(item);
  };
  for (const c of promoted.items)
    for (const [dump, count, encoding] of c.spilled)
      add(dump, c.key, { kind: c.kind, value: c.value, count, encoding });
  tops.forEach((byKind, dump) => {
    for (const top of byKind.values()) for (const { key, item } of top.items) add(dump, key, item);
  });
  snapshots.forEach((snapshot, dump) => {
    snapshot.unlistedElsewhere.push(...unlisted[dump]!);
    for (const path of snapshot.runs) rmSync(path, { force: true });
    snapshot.runs = [];
  });
}
