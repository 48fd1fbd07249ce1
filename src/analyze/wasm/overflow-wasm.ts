import { readFileSync } from 'node:fs';
import type { StringEncoding } from '../strings.ts';

/**
 * A collector's overflow table in WebAssembly memory (overflow.c): keys counted without a
 * JavaScript string or object kept for any of them, then laid out as one sorted spill run. One
 * instance per collector, made when it first overflows: collectors of one thread interleave (a
 * worker's tasks yield between ranges), so they cannot share one table.
 */

export interface OverflowTable {
  /** Counts kind NUL value; false when the table has no room for a new key (take the run, then add again). */
  add(kind: string, value: string, count: number, encoding: StringEncoding): boolean;
  /** add() of an ASCII value given as bytes[start..end) (at most MAX_VALUE of them), no string made. */
  addBytes(kind: string, bytes: Uint8Array, start: number, end: number): boolean;
  /** Distinct keys held. */
  readonly size: number;
  /** The keys held as one run (spill.ts's format), sorted; a view valid until the next call. */
  run(): Uint8Array;
  /** Empties the table. */
  reset(): void;
}

interface OverflowExports {
  memory: { buffer: ArrayBuffer };
  key_area: () => number;
  out_area: () => number;
  max_key: () => number;
  add: (len: number, count: number, encoding: number) => number;
  size: () => number;
  serialize: () => number;
  reset: () => void;
}

/** The slice of the WebAssembly API used here (TypeScript's node types do not declare it). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

let module: object | null | undefined;

/** Values of up to this many bytes are copied byte by byte (see addBytes). */
const SHORT_COPY = 96;

/** A fresh table, or null where WebAssembly is not available (the caller keeps a Map instead). */
export function newOverflowTable(): OverflowTable | null {
  if (module === undefined) {
    try {
      module = new wasmApi.Module(readFileSync(new URL('./overflow.wasm', import.meta.url)));
    } catch {
      module = null;
    }
  }
  if (module === null) return null;
  const exports = new wasmApi.Instance(module, {}).exports as OverflowExports;
  const memory = Buffer.from(exports.memory.buffer);
  const keyAt = exports.key_area();
  const outAt = exports.out_area();
  // A value is at most MAX_VALUE characters of at most 3 UTF-8 bytes each: far below max_key.
  const keyEnd = keyAt + exports.max_key();
  return {
    add(kind, value, count, encoding) {
      let at = keyAt + memory.write(kind, keyAt, 'latin1');
      memory[at++] = 0;
      at += memory.write(value, at, keyEnd - at, 'utf8');
      return exports.add(at - keyAt, Math.min(count, 0xffffffff), encoding === 'ascii' ? 0 : 1) === 1;
    },
    addBytes(kind, bytes, start, end) {
      let at = keyAt;
      for (let i = 0; i < kind.length; i++) memory[at++] = kind.charCodeAt(i);
      memory[at++] = 0;
      const stop = Math.min(end, start + (keyEnd - at));
      // Most values are a few dozen bytes, and a core holds millions: there a loop the JIT compiles
      // costs less than Buffer#copy's call (about 4% of the CPU of eight web-shape cores). A long
      // one is copied in one call, Buffer#copy rather than set(subarray()): no view made for it.
      if (stop - start <= SHORT_COPY) for (let i = start; i < stop; i++) memory[at++] = bytes[i]!;
      else at += Buffer.prototype.copy.call(bytes, memory, at, start, stop);
      return exports.add(at - keyAt, 1, 0) === 1;
    },
    get size() {
      return exports.size();
    },
    run() {
      const length = exports.serialize();
      return memory.subarray(outAt, outAt + length);
    },
    reset() {
      exports.reset();
    },
  };
}
