import { closeSync, openSync, readSync } from 'node:fs';
import { EvidenceCollector, type EvidenceSnapshot } from '../analyze/evidence.ts';
import { StringScanner } from '../analyze/strings.ts';
import { compactRuns } from './overflow.ts';
import { type SpillConfig, SpillStore } from './spill.ts';

/**
 * Scans byte ranges of a file for strings and evidence. Ranges of one file run on different
 * threads; each string is counted by exactly one range: the one its first byte lies in. A range
 * starts reading a few bytes early (a run that began before it is then seen to, and is left to the
 * range before) and reads past its end until its last run is closed.
 */

const CHUNK = 1024 * 1024;
/** Read size past a range's end, only while a run that began inside it is still open. */
const TAIL_CHUNK = 64 * 1024;
/** Enough to see that a run (ASCII or UTF-16 pair) started before the range. */
const LOOK_BEHIND = 8;
/**
 * Reads end on a page boundary whenever they can. A range's first read starts LOOK_BEHIND bytes
 * before its start; if every read after it stayed that far off the page grid, reading the page
 * cache would cost four times as much (measured on Linux 6.18: 0.4 s instead of 0.1 s of system
 * time per GiB), more than the whole scan.
 */
const PAGE = 4096;

export function scanRange(
  file: string,
  start: number,
  end: number,
  onProgress: (bytes: number) => void = () => {},
): EvidenceSnapshot {
  const collector = new EvidenceCollector();
  const fd = openSync(file, 'r');
  try {
    scanInto(collector, fd, start, end, onProgress);
  } finally {
    closeSync(fd);
  }
  return collector.snapshot();
}

/**
 * Scans ranges [bounds[i], bounds[i + 1]) of a file, each claimed from a counter shared by every
 * thread working on the file (an Int32 in `claim`), until none is left; returns the evidence of
 * the ranges this thread took. A thread that finishes a range takes the next one itself, without a
 * round trip through the main thread, so no thread waits for work while any is left. Between
 * ranges it yields, so the main thread, when it takes part, still hears from the workers.
 *
 * Its runs are merged into one (compactRuns) while other threads still have ranges to scan, so
 * the merge after the scan reads a few sources a dump rather than fifty. `unclaimed` counts the
 * raw files of the run with ranges left: once none are, nothing is left to overlap with, and the
 * merge after the scan reads the runs as they are rather than after a pass of their own.
 */
export async function scanClaimedRanges(
  file: string,
  bounds: readonly number[],
  claim: SharedArrayBuffer,
  onProgress: (bytes: number) => void = () => {},
  spill?: SpillConfig,
  unclaimed?: SharedArrayBuffer,
): Promise<EvidenceSnapshot> {
  const next = new Int32Array(claim);
  const filesLeft = unclaimed ? new Int32Array(unclaimed) : undefined;
  const collector = new EvidenceCollector(spill ? { spill: new SpillStore(spill) } : {});
  const fd = openSync(file, 'r');
  try {
    for (let i = Atomics.add(next, 0, 1); ; i = Atomics.add(next, 0, 1)) {
      if (i + 1 >= bounds.length) {
        // The one thread that finds the ranges run out first says this file is claimed.
        if (i + 1 === bounds.length && filesLeft) Atomics.sub(filesLeft, 0, 1);
        break;
      }
      scanInto(collector, fd, bounds[i]!, bounds[i + 1]!, onProgress);
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    closeSync(fd);
  }
  const snapshot = collector.snapshot();
  const workLeft = filesLeft === undefined || Atomics.load(filesLeft, 0) > 0;
  if (spill && workLeft) snapshot.runs = await compactRuns(snapshot.runs, spill);
  return snapshot;
}

/**
 * How many bytes to read at `position` for a range ending at `end`: up to the range's end and no
 * further (a whole chunk past it would be scanned for nothing), then in small steps while a run
 * that began inside the range is still open; cut back to end on a page boundary.
 */
export function readLength(position: number, end: number, capacity: number): number {
  const want = Math.min(position < end ? Math.min(CHUNK, end - position) : TAIL_CHUNK, capacity);
  const pastPage = (position + want) % PAGE;
  return pastPage !== 0 && want > pastPage ? want - pastPage : want;
}

function scanInto(
  collector: EvidenceCollector,
  fd: number,
  start: number,
  end: number,
  onProgress: (bytes: number) => void,
): void {
  const scanner = new StringScanner(
    (text, offset, encoding, triggers, secretFree) => {
      if (offset >= start && offset < end) collector.onString(text, offset, encoding, triggers, secretFree);
    },
    {
      skipPlain: true,
      values: {
        accepting: collector.valueBytes.accepting,
        string: (offset) => offset >= start && offset < end && collector.valueBytes.string(offset),
        value: collector.valueBytes.value,
      },
    },
  );
  // Read straight into the WebAssembly scanner's input when there is one (no copy); else into a
  // buffer outside Buffer's pool, so its offset is 0 and the scanner's 32-bit view is aligned.
  const buffer = scanner.inputArea ?? Buffer.allocUnsafeSlow(CHUNK);
  let position = Math.max(0, start - LOOK_BEHIND);
  scanner.seek(position);
  let counted = start;
  for (;;) {
    const bytesRead = readSync(fd, buffer, 0, readLength(position, end, buffer.length), position);
    if (bytesRead === 0) break;
    scanner.push(buffer.subarray(0, bytesRead));
    position += bytesRead;
    const done = Math.min(position, end);
    if (done - counted >= 16 * CHUNK) {
      onProgress(done - counted);
      counted = done;
    }
    if (position >= end) {
      const open = scanner.openRunStart;
      if (open === undefined || open >= end) break;
    }
  }
  if (end > counted) onProgress(end - counted);
  scanner.flush();
}
