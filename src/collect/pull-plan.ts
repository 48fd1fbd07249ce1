import { createHash } from 'node:crypto';
import { formatBytes, ONE_DECIMAL } from '../format-bytes.ts';
import type { CoreFile } from './collectors/cores.ts';
import type { PullSource } from './pull.ts';

/**
 * Which core files to bring home, as the text of a pull proposal: one source a line,
 * `<container>:<path>` or a host `<path>`. The approver sees exactly this list, and the runner
 * pulls exactly what the approved text says, parsed back from it (and hashed again).
 */

export interface PullPlan {
  sources: PullSource[];
  /** Bytes known from the collection (stopped containers' cores have no size). */
  knownBytes: number;
  unknownSizes: number;
  /** Cores found but left out (older than the newest `max`). */
  leftOut: number;
}

/**
 * The newest `max` cores first: the ones written during this incident explain it best. One file
 * is planned once, however many ways it was found (the same device and inode, or the same
 * container and path).
 */
export function planPull(cores: readonly CoreFile[], max = 8): PullPlan {
  const seen = new Set<string>();
  const unique = cores.filter((c) => {
    const keys = [`${c.container ?? ''}:${c.path}`, ...(c.file ? [`file:${c.file}`] : [])];
    if (keys.some((k) => seen.has(k))) return false;
    for (const k of keys) seen.add(k);
    return true;
  });
  const sorted = [...unique].sort((a, b) => (b.mtime?.getTime() ?? 0) - (a.mtime?.getTime() ?? 0));
  const chosen = sorted.slice(0, max);
  return {
    sources: chosen.map((c) => (c.container ? { container: c.container, path: c.path } : { path: c.path })),
    knownBytes: chosen.reduce((sum, c) => sum + (c.sizeBytes ?? 0), 0),
    unknownSizes: chosen.filter((c) => c.sizeBytes === null).length,
    leftOut: sorted.length - chosen.length,
  };
}

export function pullText(sources: readonly PullSource[]): string {
  return sources.map((s) => (s.container ? `${s.container}:${s.path}` : s.path)).join('\n');
}

/** The inverse of pullText; refuses anything that is not a list of absolute paths. */
export function parsePullText(text: string): PullSource[] {
  return text.split('\n').map((line, i) => {
    const m = /^(?:([A-Za-z0-9][A-Za-z0-9_.-]{0,127}):)?(\/[^\n\0]*)$/.exec(line);
    if (!m)
      throw new Error(
        `line ${i + 1} of the pull list is not <container>:<path> or a path: ${line.slice(0, 80)}`,
      );
    return m[1] ? { container: m[1], path: m[2]! } : { path: m[2]! };
  });
}

/**
 * A local file name for a source: readable, without directories, and unique per source (a short
 * hash of the whole source, since `/a/b_core` and `/a_b/core` read alike once flattened).
 */
export function localName(source: PullSource): string {
  const base = source.path
    .replace(/^\//, '')
    .replace(/[^A-Za-z0-9_.-]+/g, '_')
    .slice(-80);
  const tag = createHash('sha256')
    .update(`${source.container ?? ''}:${source.path}`)
    .digest('hex')
    .slice(0, 8);
  return source.container ? `${source.container.slice(0, 12)}-${base}-${tag}.tar` : `${base}-${tag}`;
}

/** One line of progress for a message edited in place: done/total, rate, ETA. */
export function progressLine(input: {
  host: string;
  files: number;
  filesDone: number;
  bytes: number;
  expectedBytes: number;
  elapsedMs: number;
}): string {
  const rate = input.elapsedMs > 0 ? (input.bytes / input.elapsedMs) * 1000 : 0;
  const left = input.expectedBytes - input.bytes;
  const eta =
    rate > 0 && input.expectedBytes > 0 && left > 0
      ? `, about ${Math.max(1, Math.round(left / rate))} s left`
      : '';
  const of = input.expectedBytes > 0 ? ` of ~${formatBytes(input.expectedBytes, ONE_DECIMAL)}` : '';
  return `:arrow_down: Pulling from ${input.host}: ${input.filesDone}/${input.files} files, ${formatBytes(input.bytes, ONE_DECIMAL)}${of} at ${formatBytes(rate, ONE_DECIMAL)}/s${eta}`;
}
