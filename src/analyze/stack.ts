/**
 * Recovers the full command line and environment from the process's initial stack. The kernel's
 * PRPSINFO keeps only the first 80 bytes of the arguments; the stack still holds all of them.
 *
 * At exec the kernel lays out, upwards from the initial stack pointer: argc, argv[] pointers, NULL,
 * envp[] pointers, NULL, then the auxiliary vector (the same bytes as NT_AUXV). We find that auxv
 * in the stack segment, walk the pointer arrays backwards and read the strings they point at.
 */

export interface StackSegment {
  /** Virtual address of bytes[0]. */
  vaddr: bigint;
  bytes: Uint8Array;
}

export interface StackStrings {
  argv: string[];
  env: string[];
}

const MAX_STRING = 128 * 1024;
const MAX_POINTERS = 100_000;
const decoder = new TextDecoder('utf-8', { fatal: false });

function readString(segment: StackSegment, address: bigint): string | undefined {
  const at = address - segment.vaddr;
  if (at < 0n || at >= BigInt(segment.bytes.length)) return undefined;
  const start = Number(at);
  const limit = Math.min(segment.bytes.length, start + MAX_STRING);
  let end = start;
  while (end < limit && segment.bytes[end] !== 0) end++;
  return decoder.decode(segment.bytes.subarray(start, end));
}

export function recoverStackStrings(segment: StackSegment, auxv: Uint8Array): StackStrings | undefined {
  if (auxv.length < 32 || segment.bytes.length < 64) return undefined;
  const needle = Buffer.from(auxv.buffer, auxv.byteOffset, Math.min(auxv.length, 64));
  const haystack = Buffer.from(segment.bytes.buffer, segment.bytes.byteOffset, segment.bytes.length);
  let auxAt = haystack.indexOf(needle);
  while (auxAt >= 0 && auxAt % 8 !== 0) auxAt = haystack.indexOf(needle, auxAt + 1);
  if (auxAt < 16) return undefined;
  const view = new DataView(segment.bytes.buffer, segment.bytes.byteOffset, segment.bytes.length);
  const word = (at: number) => view.getBigUint64(at, true);
  let at = auxAt - 8;
  if (word(at) !== 0n) return undefined; // envp's terminating NULL
  const env: bigint[] = [];
  at -= 8;
  while (at >= 0 && word(at) !== 0n && env.length < MAX_POINTERS) {
    env.unshift(word(at));
    at -= 8;
  }
  if (at < 0 || word(at) !== 0n) return undefined; // argv's terminating NULL
  const argv: bigint[] = [];
  at -= 8;
  while (at >= 0 && argv.length < MAX_POINTERS) {
    const value = word(at);
    if (value === BigInt(argv.length) && argv.length > 0) break; // argc
    if (value === 0n) return undefined;
    argv.unshift(value);
    at -= 8;
  }
  if (at < 0) return undefined;
  const args = argv.map((p) => readString(segment, p));
  if (args.some((a) => a === undefined)) return undefined;
  const vars = env.map((p) => readString(segment, p)).filter((v): v is string => v !== undefined);
  return { argv: args as string[], env: vars };
}

/** Joins arguments with spaces, as `ps` and gdb show a command line. */
export function formatCommandLine(argv: readonly string[]): string {
  return argv.join(' ');
}
