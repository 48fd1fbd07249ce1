import { closeSync, openSync, readSync } from 'node:fs';
import { EvidenceCollector, type EvidenceSnapshot } from '../analyze/evidence.ts';
import { StringScanner } from '../analyze/strings.ts';

/**
 * Scans one byte range of a file for strings and evidence. Ranges of one file run on different
 * worker threads; each string is counted by exactly one range: the one its first byte lies in. A
 * range starts reading a few bytes early (a run that began before it is then seen to, and is left
 * to the range before) and reads past its end until its last run is closed.
 */

const CHUNK = 1024 * 1024;
/** Enough to see that a run (ASCII or UTF-16 pair) started before the range. */
const LOOK_BEHIND = 8;

export function scanRange(
  file: string,
  start: number,
  end: number,
  onProgress: (bytes: number) => void = () => {},
): EvidenceSnapshot {
  const collector = new EvidenceCollector();
  const scanner = new StringScanner(
    (text, offset, encoding) => {
      if (offset >= start && offset < end) collector.onString(text, offset, encoding);
    },
    { skipPlain: true },
  );
  const fd = openSync(file, 'r');
  try {
    // Read straight into the WebAssembly scanner's input when there is one (no copy); else into a
    // buffer outside Buffer's pool, so its offset is 0 and the scanner's 32-bit view is aligned.
    const buffer = scanner.inputArea ?? Buffer.allocUnsafeSlow(CHUNK);
    let position = Math.max(0, start - LOOK_BEHIND);
    scanner.seek(position);
    let counted = start;
    for (;;) {
      const bytesRead = readSync(fd, buffer, 0, Math.min(CHUNK, buffer.length), position);
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
    return collector.snapshot();
  } finally {
    closeSync(fd);
  }
}
