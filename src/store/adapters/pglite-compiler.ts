import { setFlagsFromString } from 'node:v8';

/**
 * Keeps WebAssembly on V8's baseline compiler (Liftoff) in the bot's process when it runs the
 * embedded store. V8 otherwise recompiles a function that runs hot with its optimizing compiler
 * (TurboFan), and for PostgreSQL's largest functions that took 450-500 MiB for about a second, soon
 * after start: most of the bot's peak RSS once initdb and PGlite's buffers were dealt with (754 MiB
 * in bench:bot's burst). Functions are compiled when first called, with the flags of that moment,
 * so this is called before PGlite is opened and the flags stay set.
 *
 * The flags are V8's and hold for the whole process, its worker threads included, which is why
 * the analyzer (whose WebAssembly scanner wants TurboFan) runs the bot's analysis jobs in a child
 * process of its own (evidence/analyze-child.ts). What else runs WebAssembly in the bot (the SQL
 * check's parser, one statement at a time) runs on Liftoff. Left alone when the command line sets
 * any of these flags. Returns whether it set them.
 */
export function keepWasmOnBaselineCompiler(execArgv: readonly string[] = process.execArgv): boolean {
  const flags = ['liftoff', 'wasm-tier-up', 'wasm-dynamic-tiering'];
  if (execArgv.some((arg) => flags.some((flag) => arg.replace(/_/g, '-').includes(flag)))) return false;
  setFlagsFromString('--liftoff-only');
  setFlagsFromString('--no-wasm-tier-up');
  setFlagsFromString('--no-wasm-dynamic-tiering');
  return true;
}
