import type { EvidenceSnapshot } from '../analyze/evidence.ts';
import { type ResolvePart, resolvePart } from './overflow-split.ts';
import type { StreamResult } from './read-stream.ts';
import { scanClaimedRanges } from './scan-range.ts';
import type { SpillConfig } from './spill.ts';

/**
 * Work that runs on a worker thread (or inline): the ranges of a raw core, claimed one by one
 * from a counter shared by every thread the task was given to (see scanClaimedRanges), or a whole
 * compressed/tar file.
 */
export type ScanTask = (
  | {
      id: number;
      kind: 'ranges';
      file: string;
      bounds: number[];
      claim: SharedArrayBuffer;
      /** Raw files of the run with ranges left to claim (see scanClaimedRanges). */
      unclaimed?: SharedArrayBuffer;
    }
  | { id: number; kind: 'stream'; file: string; follow?: boolean }
  /** The worker's part of a shared resolve of overflow runs (overflow-split.ts). */
  | { id: number; kind: 'resolve'; part: ResolvePart }
) & {
  /** Where values past the in-memory caps are spilled (see spill.ts); without it they are dropped. */
  spill?: SpillConfig;
};

export type TaskResult = EvidenceSnapshot | StreamResult | undefined;

export type WorkerMessage =
  | { type: 'progress'; id: number; bytes: number }
  /** Output a task hands over as it goes (a resolve part's events), transferred. */
  | { type: 'output'; id: number; data: Uint8Array }
  | { type: 'done'; id: number; result: TaskResult }
  | { type: 'failed'; id: number; error: { code: string; message: string } };

/**
 * Runs a task; `onProgress` receives bytes of input consumed since the last call, `onOutput` what
 * the task hands over as it goes.
 */
export async function runTask(
  task: ScanTask,
  onProgress: (bytes: number) => void,
  onOutput: (data: Uint8Array) => void = () => {},
): Promise<TaskResult> {
  if (task.kind === 'resolve') {
    await resolvePart(task.part, onOutput);
    return undefined;
  }
  if (task.kind === 'ranges')
    return scanClaimedRanges(task.file, task.bounds, task.claim, onProgress, task.spill, task.unclaimed);
  // Loaded on first use: a worker that only scans ranges starts faster without zlib and tar.
  const { readDumpStream } = await import('./read-stream.ts');
  let last = 0;
  return readDumpStream(
    task.file,
    (total) => {
      onProgress(total - last);
      last = total;
    },
    { ...(task.spill ? { spill: task.spill } : {}), ...(task.follow ? { follow: true } : {}) },
  );
}
