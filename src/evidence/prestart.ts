import { Worker } from 'node:worker_threads';

/**
 * Scan workers started before the CLI has loaded its own modules. A worker takes 0.15-0.3 s to
 * boot Node and load scan-worker.ts; started here, that overlaps the main thread's start-up
 * instead of following it. A ScanPool adopts them before starting new ones (see pool.ts). They
 * are unref'd until adopted, so one no pool wants never holds the process open, and
 * discardPrestarted ends them.
 *
 * This module imports nothing of the project, so the CLI entry can load it before everything else.
 */

// From src/ (a checkout, run through type stripping) the worker is scan-worker.ts; from dist/ (the
// npm package, built by tsc) it is scan-worker.js: tsc rewrites imports, not URLs.
export const SCAN_WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './scan-worker.ts' : './scan-worker.js',
  import.meta.url,
);

/**
 * A scan thread makes a string of every candidate string it reads and drops it at once: millions
 * on a text-dense core. With V8's defaults (sized from the machine's memory) that garbage alone
 * took 150 MiB of RSS a thread before a collection. A young generation of 8 MiB makes V8 collect sooner, at
 * no measurable cost, and keeps one dump within 256 MiB of RSS (about 210 MiB for 1.1 M distinct
 * URLs). The old generation is capped at 256 MiB too, far above what a thread keeps (see
 * EvidenceCollector's caps; a tar of many cores keeps each one's), so V8 sizes its heap for that.
 */
export const SCAN_WORKER_OPTIONS = {
  resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 256 },
};

interface Prestarted {
  worker: Worker;
  onError: () => void;
}

const waiting: Prestarted[] = [];

export function prestartScanWorkers(count: number): void {
  for (let i = 0; i < count; i++) {
    const worker = new Worker(SCAN_WORKER_URL, SCAN_WORKER_OPTIONS);
    worker.unref();
    // One that fails to boot is dropped: the pool then starts a fresh one and sees the error.
    const onError = () => {
      const at = waiting.indexOf(entry);
      if (at >= 0) waiting.splice(at, 1);
    };
    const entry: Prestarted = { worker, onError };
    worker.on('error', onError);
    waiting.push(entry);
  }
}

/** A prestarted worker, referenced again and without listeners; undefined when none is left. */
export function takePrestarted(): Worker | undefined {
  const entry = waiting.shift();
  if (!entry) return undefined;
  entry.worker.off('error', entry.onError);
  entry.worker.ref();
  return entry.worker;
}

/** Ends the prestarted workers nobody adopted. */
export async function discardPrestarted(): Promise<void> {
  const left = waiting.splice(0);
  await Promise.all(left.map((entry) => entry.worker.terminate()));
}
