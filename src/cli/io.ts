import { parseArgs } from 'node:util';

/** What a command may touch of the outside world: injected so tests can capture it. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
}

/** A command's own options are only -h/--help: parse them (unknown options are usage errors). */
export function helpOnly(args: string[]): boolean {
  return parseArgs({ args, options: { help: { type: 'boolean', short: 'h', default: false } } }).values.help;
}
