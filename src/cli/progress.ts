import { formatBytes } from '../format-bytes.ts';

/**
 * A one-line progress bar for stderr (bytes, rate, ETA), drawn only when stderr is a terminal so
 * logs and pipes stay clean. At most ten redraws a second. It counts the bytes of the files read,
 * compressed where they are, as the report's first line and totals.fileBytes do.
 */

export function formatProgress(done: number, total: number, elapsedMs: number, width = 24): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * width);
  const rate = elapsedMs > 0 ? (done / elapsedMs) * 1000 : 0;
  const eta = rate > 0 ? Math.max(0, (total - done) / rate) : Number.NaN;
  const etaText = Number.isFinite(eta) ? `${Math.ceil(eta)}s` : '--';
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)} of files read ${formatBytes(rate)}/s ETA ${etaText}`;
}

export interface ProgressBar {
  update(done: number, total: number): void;
  done(): void;
}

export function progressBar(stream: NodeJS.WriteStream, now: () => number = Date.now): ProgressBar {
  if (!stream.isTTY) return { update() {}, done() {} };
  const started = now();
  let last = Number.NEGATIVE_INFINITY;
  return {
    update(done, total) {
      const t = now();
      if (t - last < 100 && done < total) return;
      last = t;
      stream.write(`\r${formatProgress(done, total, t - started)}\u001b[K`);
    },
    done() {
      stream.write('\r\u001b[K');
    },
  };
}
