import { readFileSync } from 'node:fs';
import { EVIDENCE_TRIGGERS } from '../extract.ts';

/**
 * Loads strings.wasm (built from strings.c: the scanner's hot loop in WebAssembly SIMD, two to
 * three times the speed of the JavaScript loop on binary data) and lays out its memory: one input
 * chunk, a 64 KiB gap (the SIMD loop reads whole 64-byte blocks past the end), then the records.
 * One instance per thread: StringScanner.push is synchronous, so scanners never interleave in it.
 */

export const WASM_INPUT_CAPACITY = 1 << 20;
const INPUT_OFFSET = 1 << 20;
const RECORDS_OFFSET = INPUT_OFFSET + WASM_INPUT_CAPACITY + (64 << 10);

export const REC_ASCII = 1;
export const REC_UTF16 = 2;
export const REC_ASCII_OPEN = 3;
export const REC_UTF16_OPEN = 4;
/** A string whose only evidence is its URLs or requests, found in WebAssembly: REC_VALUE records follow. */
export const REC_VALUE_STRING = 5;
/** One of them; its kind (VALUE_URL, VALUE_REQUEST) in bits 8 and up. */
export const REC_VALUE = 6;
export const VALUE_URL = 1;
export const VALUE_REQUEST = 2;
export const VALUE_SQL = 3;
/** Or'ed into REC_ASCII/REC_UTF16: the string can yield no evidence (see EVIDENCE_TRIGGERS). */
export const REC_PLAIN = 0x10;
/** Or'ed into REC_ASCII: the string holds no marker redact.ts's MAYBE_SECRET looks for (see strings.c). */
export const REC_NO_SECRET = 0x20;

export interface WasmScanner {
  /** The input area: read into it (zero copy), or copy a chunk into it. */
  input: Buffer;
  /**
   * Scans input[0..len) and returns the records as (kind, start, end) triples. `urlOnly`,
   * `requestOnly` and `sqlOnly`, when not 0, are the trigger masks of a string whose URLs (requests,
   * SQL statements) strings.c may find itself (REC_VALUE_STRING).
   */
  scan(
    len: number,
    fromAscii: number,
    fromUtf16: number,
    urlOnly: number,
    requestOnly: number,
    sqlOnly: number,
  ): Uint32Array;
}

/** The slice of the WebAssembly API used here (TypeScript's node types do not declare it). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

interface ScannerExports {
  memory: { buffer: ArrayBuffer };
  scan: ScanExport;
  trigger_area: () => number;
  set_triggers: (count: number) => number;
}

type ScanExport = (
  input: number,
  len: number,
  fromAscii: number,
  fromUtf16: number,
  records: number,
  urlOnly: number,
  requestOnly: number,
  sqlOnly: number,
) => number;

let instance: WasmScanner | null | undefined;

/** The thread's scanner, or null where WebAssembly SIMD is not available. */
export function wasmScanner(): WasmScanner | null {
  if (instance !== undefined) return instance;
  try {
    const bytes = readFileSync(new URL('./strings.wasm', import.meta.url));
    const module = new wasmApi.Module(bytes);
    const exports = new wasmApi.Instance(module, {}).exports as ScannerExports;
    const memory = Buffer.from(exports.memory.buffer);
    let at = exports.trigger_area();
    for (const trigger of EVIDENCE_TRIGGERS) {
      memory[at++] = trigger.length;
      at += memory.write(trigger, at, 'latin1');
    }
    if (exports.set_triggers(EVIDENCE_TRIGGERS.length) !== EVIDENCE_TRIGGERS.length) {
      throw new Error('strings.wasm takes at most 32 evidence triggers of at most 32 bytes');
    }
    const input = memory.subarray(INPUT_OFFSET, INPUT_OFFSET + WASM_INPUT_CAPACITY);
    const records = new Uint32Array(exports.memory.buffer, RECORDS_OFFSET);
    instance = {
      input,
      scan(len, fromAscii, fromUtf16, urlOnly, requestOnly, sqlOnly) {
        const count = exports.scan(
          INPUT_OFFSET,
          len,
          fromAscii,
          fromUtf16,
          RECORDS_OFFSET,
          urlOnly,
          requestOnly,
          sqlOnly,
        );
        return records.subarray(0, count * 3);
      },
    };
  } catch {
    instance = null;
  }
  return instance;
}
