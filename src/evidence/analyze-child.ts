import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Report } from '../analyze/report-schema.ts';
import { CodedError, ErrorCode } from '../errors.ts';
import type { PartialAnalysis } from './analyze-files.ts';

/**
 * Runs analyzeFiles in a child process of its own (analyze-child-main.ts), for the bot's analysis
 * job. Three reasons:
 * - The bot's process runs PGlite with V8's WebAssembly optimizing compiler off (its peak memory,
 *   see keepWasmOnBaselineCompiler), a process-wide flag; the analyzer's WebAssembly scanner keeps
 *   it in a process of its own.
 * - The analysis's memory is bounded (an old generation of `maxOldSpaceMiB`, as `nightshift
 *   analyze` has) and measured on its own (`peakRssBytes`), apart from the bot's.
 * - A crash, an out-of-memory or a hang of the analysis is a failed analysis, not a dead bot.
 */

export interface AnalysisChildOptions {
  /** Scan worker threads in the child. Default: the machine's available parallelism. */
  workers?: number;
  /** Milliseconds before the child is killed and the analysis failed. Default 3,600,000 (an hour). */
  timeoutMs?: number;
  /** The child's V8 old generation, in MiB. Default 384, as `nightshift analyze` (bin/nightshift). */
  maxOldSpaceMiB?: number;
  /** Called as input bytes are read: (bytes done, bytes in all), a few times a second at most. */
  onProgress?: (done: number, total: number) => void;
  /** The paths are being pulled: each is read as it grows (analyzeFiles' `follow`). Default false. */
  follow?: boolean;
  /** Called as each file's analysis ends, before the last: the headline so far (only it crosses the IPC channel). */
  onPartial?: (partial: PartialAnalysis) => void;
}

export const ANALYSIS_CHILD_DEFAULTS = { timeoutMs: 3_600_000, maxOldSpaceMiB: 384 };

export interface ChildAnalysis {
  report: Report;
  /** The secret values redaction hid (never in the report). */
  secrets: string[];
  /** The child's peak resident set size, its worker threads included. */
  peakRssBytes: number;
}

/** What the bot sends the child, once. */
export interface ChildRequest {
  paths: string[];
  workers: number;
  follow?: boolean;
}

/** What the child sends back. */
export type ChildReply =
  | { type: 'progress'; done: number; total: number }
  | ({ type: 'partial' } & PartialAnalysis)
  | ({ type: 'done' } & ChildAnalysis)
  | { type: 'error'; code: ErrorCode; message: string };

// From src/ (type stripping) the entry is .ts; from dist/ (the npm package) .js: tsc rewrites
// imports, not URLs.
const CHILD_MAIN = fileURLToPath(
  new URL(
    import.meta.url.endsWith('.ts') ? './analyze-child-main.ts' : './analyze-child-main.js',
    import.meta.url,
  ),
);

export function analyzeInChild(
  paths: readonly string[],
  options: AnalysisChildOptions = {},
): Promise<ChildAnalysis> {
  const timeoutMs = options.timeoutMs ?? ANALYSIS_CHILD_DEFAULTS.timeoutMs;
  const maxOldSpaceMiB = options.maxOldSpaceMiB ?? ANALYSIS_CHILD_DEFAULTS.maxOldSpaceMiB;
  return new Promise<ChildAnalysis>((resolve, reject) => {
    // The heap flags bin/nightshift gives `analyze`, and nothing of this process's own: V8 flags
    // set at run time (the baseline compiler for PGlite) are not in execArgv either.
    const child = fork(CHILD_MAIN, [], {
      execArgv: ['--max-semi-space-size=2', `--max-old-space-size=${maxOldSpaceMiB}`],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      // Structured clone: the report's values arrive as analyzeFiles made them.
      serialization: 'advanced',
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    let outcome: { ok: ChildAnalysis } | { error: CodedError } | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    timer.unref();
    child.on('message', (message: ChildReply) => {
      if (message.type === 'progress') options.onProgress?.(message.done, message.total);
      else if (message.type === 'partial') {
        const { type: _, ...partial } = message;
        options.onPartial?.(partial);
      } else if (message.type === 'done') outcome = { ok: message };
      else outcome = { error: new CodedError(message.code, message.message) };
    });
    child.on('error', (error) => {
      outcome ??= {
        error: new CodedError(
          ErrorCode.AnalysisFailed,
          `could not start the analysis process: ${error.message}`,
          {
            cause: error,
          },
        ),
      };
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (outcome && 'ok' in outcome) return resolve(outcome.ok);
      if (outcome) return reject(outcome.error);
      reject(
        new CodedError(
          ErrorCode.AnalysisFailed,
          childFailure({ code, signal, stderr, timedOut, timeoutMs, maxOldSpaceMiB }),
        ),
      );
    });
    child.send({
      paths: [...paths],
      workers: options.workers ?? Math.max(1, availableParallelism()),
      ...(options.follow ? { follow: true } : {}),
    } satisfies ChildRequest);
  });
}

/** Why the child ended without an answer, in words: out of memory, its time limit, a signal, a status. */
export function childFailure(end: {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  timedOut: boolean;
  timeoutMs: number;
  maxOldSpaceMiB: number;
}): string {
  if (end.timedOut) {
    const limit = end.timeoutMs < 1000 ? `${end.timeoutMs} ms` : `${Math.round(end.timeoutMs / 1000)} s`;
    return `the analysis took longer than ${limit} and was stopped`;
  }
  if (/heap out of memory|Reached heap limit|ERR_WORKER_OUT_OF_MEMORY/.test(end.stderr))
    return `the analysis ran out of memory (its heap is limited to ${end.maxOldSpaceMiB} MiB)`;
  const how = end.signal ? `was killed by ${end.signal}` : `exited with status ${end.code}`;
  const last = end.stderr.trim().split('\n').at(-1)?.slice(0, 200);
  return `the analysis process ${how}${last ? `: ${last}` : ''}`;
}
