import { readFileSync } from 'node:fs';

/**
 * The merge of overflow runs in WebAssembly memory (merge.c): see src/evidence/overflow.ts, which
 * feeds it (the files are read there, through `refill`) and acts on what it emits. One instance
 * per merge: its memory grows with the sources and is let go with it.
 */

export interface MergeSource {
  dump: number;
  /** The dump's kept values (its records' count field is the kept item's index), not a run. */
  kept: boolean;
}

export interface MergeKind {
  name: string;
  /** correlate's KIND_WEIGHT. */
  weight: number;
  /** A candidate from one dump (request lines, exceptions). */
  always: boolean;
  /** Where streamReasons may find a stream: never, by the value's words (url, request), or always (header). */
  stream: 'never' | 'value' | 'always';
  /** isFurniture whatever the value (env, release, environment). */
  furniture: boolean;
}

export interface MergeSetup {
  /** Premerge: the sources (runs of one dump) become one run; else resolve: events (see merge.c). */
  premerge: boolean;
  sources: readonly MergeSource[];
  /** Read buffer per source, in bytes (grown for a record that does not fit). */
  bufferBytes: number;
  dumps: number;
  /** Dumps in the set (rank's total). */
  total: number;
  /** Size of a (dump, kind) top heap. */
  top: number;
  kinds: readonly MergeKind[];
  /** Only the keys from lo (inclusive) to hi (exclusive), as bytes (see merge.c): one part of a shared resolve. */
  bounds?: { lo?: Uint8Array; hi?: Uint8Array };
}

/**
 * Fills `memory` from `at`, at most `max` bytes, with the source's next bytes; returns how many
 * (0 at its end), or -n when its next record needs n bytes of room and fewer were offered.
 */
export type Refill = (source: number, memory: Buffer, at: number, max: number) => number;

export interface WasmMerge {
  /**
   * Merges up to maxKeys keys; returns what was laid out for them (a view valid until the next
   * call; empty when none of them needed anything), or null once every key is merged.
   */
  step(maxKeys: number): Buffer | null;
  /**
   * The worst of the full promoted heap, which a candidate must beat. `ordered` (the default): its
   * key comes before every key still to merge (see merge.c's set_threshold).
   */
  setThreshold(worst: { rank: number; dumps: number; occurrences: number }, ordered?: boolean): void;
}

interface MergeExports {
  memory: { buffer: ArrayBuffer };
  scratch_area: () => number;
  out_area: () => number;
  failed: () => number;
  setup: (
    premerge: number,
    count: number,
    buffer: number,
    dumps: number,
    total: number,
    top: number,
  ) => number;
  set_source: (i: number, dump: number, kept: number) => void;
  add_kind: (len: number, weight: number, always: number, flags: number) => void;
  set_threshold: (rank: number, dumps: number, occurrences: number, ordered: number) => void;
  bound_area: (bytes: number) => number;
  set_bounds: (lo: number, hi: number) => void;
  start: () => number;
  step: (maxKeys: number) => number;
  remaining: () => number;
  merged: () => number;
}

/** The slice of the WebAssembly API used here (TypeScript's node types do not declare it). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

let module: object | null | undefined;

/** Whether merge.wasm loads here. */
export function wasmMergeAvailable(): boolean {
  if (module === undefined) {
    try {
      module = new wasmApi.Module(readFileSync(new URL('./merge.wasm', import.meta.url)));
    } catch {
      module = null;
    }
  }
  return module !== null;
}

/**
 * A merge over the given sources, their first records read; null where WebAssembly is not
 * available. Throws what refill throws, and an Error when memory runs out or a run is malformed.
 */
export function newWasmMerge(setup: MergeSetup, refill: Refill): WasmMerge | null {
  if (!wasmMergeAvailable() || !module) return null;
  let exports: MergeExports | undefined;
  let view = Buffer.alloc(0);
  /** The memory, viewed afresh when it grew (a grown memory detaches the old buffer). */
  const memory = () => {
    const buffer = exports!.memory.buffer;
    if (view.buffer !== buffer) view = Buffer.from(buffer);
    return view;
  };
  const instance = new wasmApi.Instance(module, {
    env: { refill: (source: number, at: number, max: number) => refill(source, memory(), at, max) },
  });
  exports = instance.exports as MergeExports;
  const e = exports;
  const fail = (what: string) => new Error(`overflow merge: ${what}`);
  const { sources, kinds } = setup;
  if (
    e.setup(
      setup.premerge ? 1 : 0,
      sources.length,
      setup.bufferBytes,
      setup.dumps,
      setup.total,
      setup.top,
    ) !== 1
  )
    throw fail('out of memory');
  sources.forEach((s, i) => {
    e.set_source(i, s.dump, s.kept ? 1 : 0);
  });
  for (const kind of kinds) {
    const len = memory().write(kind.name, e.scratch_area(), 'latin1');
    const flags = (kind.stream === 'always' ? 1 : kind.stream === 'value' ? 2 : 0) | (kind.furniture ? 4 : 0);
    e.add_kind(len, kind.weight, kind.always ? 1 : 0, flags);
  }
  const lo = setup.bounds?.lo ?? new Uint8Array(0);
  const hi = setup.bounds?.hi ?? new Uint8Array(0);
  if (lo.length + hi.length > 0) {
    const area = e.bound_area(lo.length + hi.length);
    if (area === 0) throw fail('out of memory');
    memory().set(lo, area);
    memory().set(hi, area + lo.length);
    e.set_bounds(lo.length, hi.length);
  }
  if (e.start() !== 1) throw fail('a run is malformed or memory ran out');
  const out = e.out_area();
  return {
    step(maxKeys) {
      if (e.remaining() === 0) return null;
      const length = e.step(maxKeys);
      if (e.failed() !== 0) throw fail('a run is malformed or memory ran out');
      if (e.merged() === 0) throw fail('a key is longer than the merge can lay out');
      return memory().subarray(out, out + length);
    },
    setThreshold(worst, ordered = true) {
      e.set_threshold(worst.rank, worst.dumps, worst.occurrences, ordered ? 1 : 0);
    },
  };
}
