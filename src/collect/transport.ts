/**
 * The collection port: run a fixed command on a host and get its output back, bounded in time
 * and size. The SSH adapter (ssh.ts) is the only implementation; tests use it against a real sshd.
 */

export interface RemoteCommand {
  command: string;
  /** Killed (remotely with `timeout`, and the channel closed) after this long. */
  timeoutMs: number;
  /** Output past this many bytes (stdout and stderr together) is dropped and the command stopped. */
  maxOutputBytes: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Null when the host sent no exit status: see `signal`, else the connection dropped. */
  exitCode: number | null;
  /** The signal that ended the command ('SIGKILL'), when the host reported one (exit-signal). */
  signal?: string;
  timedOut: boolean;
  truncated: boolean;
  durationMs: number;
}

export interface RemoteStream {
  /** The command's stdout, as it arrives (pipe it; backpressure reaches the remote side). */
  stdout: NodeJS.ReadableStream;
  /**
   * Settles when the command ends: its exit code; or null and the signal that killed it (the host
   * sent exit-signal); or null alone when the channel closed without either (the connection dropped).
   */
  done: Promise<{ exitCode: number | null; signal?: string; stderr: string }>;
  /** Closes the channel: the bot gives up on the rest (its disk is filling, the data is corrupt). */
  abort(): void;
}

export interface RemoteHost {
  readonly name: string;
  exec(command: RemoteCommand): Promise<ExecResult>;
  /** Streams a command's output (evidence transfers): no output cap, a time limit still applies. */
  stream(command: Omit<RemoteCommand, 'maxOutputBytes'>): Promise<RemoteStream>;
}

/** POSIX shell single-quoting. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * Wraps a command so it cannot hurt a struggling host: lowest CPU priority, idle I/O class where
 * ionice exists, and a hard time limit enforced on the host itself (coreutils timeout), so a
 * command outlives neither its budget nor a dropped connection.
 */
export function gentle(command: string, timeoutMs: number): string {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  const inner = `if command -v ionice >/dev/null 2>&1; then exec ionice -c 3 sh -c "$1"; else exec sh -c "$1"; fi`;
  return `exec timeout --kill-after=2 ${seconds} nice -n 19 sh -c ${shellQuote(inner)} nightshift ${shellQuote(command)}`;
}
