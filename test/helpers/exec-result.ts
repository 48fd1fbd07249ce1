import type { ExecResult } from '../../src/collect/transport.ts';

/** What a command that exited 0 after printing `stdout` returns: the collectors' parsers' input. */
export const execResult = (stdout: string): ExecResult => ({
  stdout,
  stderr: '',
  exitCode: 0,
  timedOut: false,
  truncated: false,
  durationMs: 1,
});
