import { formatBytes, ONE_DECIMAL } from '../format-bytes.ts';
import type { Filesystem } from './collectors/disk.ts';
import type { PullSource } from './pull.ts';
import { shellQuote } from './transport.ts';

/**
 * Freeing the disk once the cores are home: the text of a `free` proposal, one file a line, with
 * what the collection saw of it (size, mtime, device:inode, the container's layer on the host) and,
 * for a file the host checks by hash (up to HASH_CHEAP_BYTES), the sha256 of what was pulled. The
 * approver sees exactly this; the runner deletes exactly what the approved text says, parsed back
 * from it, and only a file that is still the one pulled.
 *
 *   size=1048576<TAB>mtime=1764755000<TAB>file=2049:1234<TAB>sha256=<hex><TAB>layer=/var/lib/…/diff<TAB>web1:/app/core
 *
 * The path is last (it may hold any character but a newline); the fields before it hold no tab.
 */

export interface FreeItem extends PullSource {
  /** Bytes, as the host's stat said at the collection (and the pull brought home). */
  sizeBytes: number;
  /** Whole seconds since the epoch, as stat's %Y prints it. */
  mtime: number;
  /** `<device>:<inode>` on the host, when the collection could stat it there. */
  file?: string;
  /** The container's writable layer on the host: a stopped container's core is deleted there. */
  layer?: string;
  /**
   * Of the content pulled: the file, or the tar `docker cp` made of it. Needed for a file the host
   * checks by hash (up to HASH_CHEAP_BYTES); a bigger one kept compressed may have none.
   */
  sha256?: string;
}

/** A pulled artifact as the store holds it, with what the pull brought home. */
export interface PulledArtifact extends PullSource {
  state: string;
  sha256: string | null;
  /** Deleted on the host already (by an earlier free run). */
  deleted: boolean;
  /** The copy at home is still there (retention has not removed it). */
  kept: boolean;
  /** What the collection saw on the host. */
  remoteSizeBytes: number | null;
  remoteMtime: Date | null;
  file: string | null;
  layer: string | null;
  /** The core's own bytes that came home: the file's size, or the size of its member in the tar. */
  contentBytes: number | null;
}

export interface FreePlan {
  items: FreeItem[];
  /** Pulled files that are not proposed, and why. */
  skipped: Array<{ source: PullSource; reason: string }>;
  bytes: number;
}

/** Only files pulled whole, whose size and mtime the host told, are proposed. */
export function planFree(artifacts: readonly PulledArtifact[]): FreePlan {
  const items: FreeItem[] = [];
  const skipped: FreePlan['skipped'] = [];
  for (const a of artifacts) {
    const source: PullSource = a.container ? { container: a.container, path: a.path } : { path: a.path };
    const skip = (reason: string) => skipped.push({ source, reason });
    if (a.deleted) continue;
    if (a.state !== 'complete') skip('it was not pulled whole');
    else if (!a.sha256 && (a.remoteSizeBytes === null || a.remoteSizeBytes <= HASH_CHEAP_BYTES))
      skip('what came home was not hashed, and the host checks a file this small by its sha256');
    else if (!a.kept) skip('the copy pulled home is gone (retention), so the host keeps the only one');
    else if (a.remoteSizeBytes === null || a.remoteMtime === null)
      skip('the host did not tell its size and mtime, so it could not be checked before deleting');
    else if (a.contentBytes !== a.remoteSizeBytes)
      skip(
        `${a.contentBytes ?? 'unknown'} bytes came home of the ${a.remoteSizeBytes} the host listed: not pulled whole`,
      );
    else if (a.path.includes('\n') || a.layer?.includes('\t') || a.layer?.includes('\n'))
      skip('its name cannot be written on one line');
    else
      items.push({
        ...source,
        sizeBytes: a.remoteSizeBytes,
        mtime: Math.floor(a.remoteMtime.getTime() / 1000),
        ...(a.file ? { file: a.file } : {}),
        ...(a.container && a.layer ? { layer: a.layer } : {}),
        ...(a.sha256 ? { sha256: a.sha256 } : {}),
      });
  }
  return { items, skipped, bytes: items.reduce((sum, i) => sum + i.sizeBytes, 0) };
}

export function freeText(items: readonly FreeItem[]): string {
  return items
    .map((i) =>
      [
        `size=${i.sizeBytes}`,
        `mtime=${i.mtime}`,
        ...(i.file ? [`file=${i.file}`] : []),
        ...(i.sha256 ? [`sha256=${i.sha256}`] : []),
        ...(i.layer ? [`layer=${i.layer}`] : []),
        i.container ? `${i.container}:${i.path}` : i.path,
      ].join('\t'),
    )
    .join('\n');
}

const FIELD = /^(size|mtime|file|sha256|layer)=(.*)$/s;
const TARGET = /^(?:([A-Za-z0-9][A-Za-z0-9_.-]{0,127}):)?(\/[^\n\0]*)$/;

/** The inverse of freeText; refuses anything it would not have written. */
export function parseFreeText(text: string): FreeItem[] {
  return text.split('\n').map((line, n) => {
    const bad = (why: string) =>
      new Error(`line ${n + 1} of the list of files to delete ${why}: ${line.slice(0, 80)}`);
    const parts = line.split('\t');
    const fields = new Map<string, string>();
    let at = 0;
    for (; at < parts.length - 1; at++) {
      const m = FIELD.exec(parts[at]!);
      if (!m) break;
      if (fields.has(m[1]!)) throw bad(`names ${m[1]} twice`);
      fields.set(m[1]!, m[2]!);
    }
    const target = TARGET.exec(parts.slice(at).join('\t'));
    if (!target) throw bad('does not end in <container>:<path> or a path');
    const size = fields.get('size') ?? '';
    const mtime = fields.get('mtime') ?? '';
    const sha256 = fields.get('sha256');
    const file = fields.get('file');
    const layer = fields.get('layer');
    if (!/^\d+$/.test(size) || !/^\d+$/.test(mtime)) throw bad('has no size or mtime in whole numbers');
    if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw bad('has a sha256 that is not one');
    if (sha256 === undefined && Number(size) <= HASH_CHEAP_BYTES)
      throw bad('has no sha256, which a file this small is checked by');
    if (file !== undefined && !/^\d+:\d+$/.test(file)) throw bad('has a file that is not <device>:<inode>');
    if (layer !== undefined && (!target[1] || !layer.startsWith('/')))
      throw bad('names a layer for a file outside a container');
    return {
      ...(target[1] ? { container: target[1] } : {}),
      path: target[2]!,
      sizeBytes: Number(size),
      mtime: Number(mtime),
      ...(file ? { file } : {}),
      ...(layer ? { layer } : {}),
      ...(sha256 ? { sha256 } : {}),
    };
  });
}

/** Files up to this size are hashed on the host before they are deleted; bigger ones by stat alone. */
export const HASH_CHEAP_BYTES = 256 * 1024 * 1024;

const MARK = 'nightshift-free';

/**
 * The host command that deletes one file, only when it is still the one pulled: a regular file
 * (not a link), with the size and mtime (and device:inode, when known) the collection saw, and,
 * when it is small enough to hash cheaply, the sha256 of what came home. It prints one line,
 * `nightshift-free:<deleted|gone|changed|failed>[:why]`, and always exits 0: the line is the result.
 * Every value from outside is single-quoted (the approved text is data, not shell).
 *
 * A running container's core is checked and deleted inside it (`docker exec … stat`, `rm`), its
 * inode read on its layer when the host lets the bot see it; a stopped container's, in its
 * writable layer on the host, since nothing can be run in it.
 */
export function freeCommand(item: FreeItem, hashBelow = HASH_CHEAP_BYTES): string {
  const q = shellQuote;
  const say = (status: string, why?: string) =>
    `{ echo ${q(`${MARK}:${status}${why ? `:${why}` : ''}`)}; exit 0; }`;
  const sayWith = (status: string, variable: string) =>
    `{ printf '%s\\n' "${MARK}:${status}:$(printf '%s' "${variable}" | tr '\\n' ' ')"; exit 0; }`;
  const hash = item.sizeBytes <= hashBelow;
  // Never deleted unchecked: a file the host checks by hash needs the hash of what came home.
  if (hash && !item.sha256) return say('failed', 'no sha256 of what came home to check it against');
  // On the host the inode is always readable: it must match. In a running container the bot's user
  // may not see the layer; size, mtime and (when cheap) the hash then say it.
  const compare = (strict: boolean) => [
    // stat's words, as `set --` splits them: size, mtime.
    `set -- $s`,
    `[ "$1" = ${q(String(item.sizeBytes))} ] && [ "$2" = ${q(String(item.mtime))} ] || ${sayWith('changed', 'size and mtime now $s')}`,
    ...(item.file
      ? [
          `${strict ? '' : '[ -z "$i" ] || '}[ "$i" = ${q(item.file)} ] || ${sayWith('changed', 'now device:inode $i')}`,
        ]
      : []),
  ];
  if (!item.container) {
    return [
      `p=${q(item.path)}`,
      `[ -e "$p" ] || [ -L "$p" ] || ${say('gone')}`,
      `[ -f "$p" ] && [ ! -L "$p" ] || ${say('changed', 'not a regular file now')}`,
      `s=$(stat -c '%s %Y' -- "$p" 2>&1) || ${sayWith('failed', '$s')}`,
      `i=$(stat -c '%d:%i' -- "$p" 2>/dev/null) || i=''`,
      ...compare(true),
      ...(hash
        ? [
            `h=$(sha256sum -- "$p" 2>/dev/null | cut -c1-64)`,
            `[ "$h" = ${q(item.sha256!)} ] || ${sayWith('changed', 'sha256 now $h')}`,
          ]
        : []),
      `e=$(rm -f -- "$p" 2>&1) || ${sayWith('failed', '$e')}`,
      `[ ! -e "$p" ] || ${say('failed', 'still there after rm')}`,
      say('deleted'),
    ].join('\n');
  }
  return [
    `d=$(command -v docker || command -v podman) || ${say('failed', 'neither docker nor podman on the host')}`,
    `id=${q(item.container)}`,
    `p=${q(item.path)}`,
    `layer=${q(item.layer ?? '')}`,
    `r=$("$d" inspect -f '{{.State.Running}}' "$id" 2>/dev/null </dev/null) || ${say('gone', 'the container is gone')}`,
    `f="$layer$p"`,
    `i=''`,
    `if [ "$r" = true ]; then`,
    `  s=$("$d" exec "$id" stat -c '%s %Y' "$p" 2>&1 </dev/null) || ${sayWith('failed', 'could not stat it in the container: $s')}`,
    `  [ -n "$layer" ] && i=$(stat -c '%d:%i' -- "$f" 2>/dev/null) || i=''`,
    `else`,
    `  [ -n "$layer" ] || ${say('failed', 'the container is stopped and its layer on the host is not known')}`,
    `  [ -d "$layer" ] || ${say('failed', 'the container is stopped and its layer on the host cannot be seen')}`,
    `  [ -e "$f" ] || [ -L "$f" ] || ${say('gone')}`,
    `  [ -f "$f" ] && [ ! -L "$f" ] || ${say('changed', 'not a regular file now')}`,
    `  s=$(stat -c '%s %Y' -- "$f" 2>&1) || ${sayWith('failed', '$s')}`,
    `  i=$(stat -c '%d:%i' -- "$f" 2>/dev/null) || i=''`,
    `fi`,
    ...compare(false),
    ...(hash
      ? [
          // Hashed the way it was pulled: the tar docker cp makes of it (the same bytes for the same file).
          `h=$("$d" cp "$id:$p" - 2>/dev/null </dev/null | sha256sum | cut -c1-64)`,
          `[ "$h" = ${q(item.sha256!)} ] || ${sayWith('changed', 'sha256 now $h')}`,
        ]
      : []),
    `if [ "$r" = true ]; then`,
    `  e=$("$d" exec "$id" rm -f "$p" 2>&1 </dev/null) || ${sayWith('failed', '$e')}`,
    `  ! "$d" exec "$id" stat -c '%s' "$p" >/dev/null 2>&1 </dev/null || ${say('failed', 'still there after rm')}`,
    `else`,
    `  e=$(rm -f -- "$f" 2>&1) || ${sayWith('failed', '$e')}`,
    `  [ ! -e "$f" ] || ${say('failed', 'still there after rm')}`,
    `fi`,
    say('deleted'),
  ].join('\n');
}

export type FreeStatus = 'deleted' | 'gone' | 'changed' | 'failed';

export interface FreeOutcome {
  status: FreeStatus;
  detail: string;
}

/** The line freeCommand printed; anything else (a dropped connection, a killed shell) failed. */
export function parseFreeOutput(stdout: string, stderr: string, exitCode: number | null): FreeOutcome {
  const m = new RegExp(`^${MARK}:(deleted|gone|changed|failed)(?::(.*))?$`, 'm').exec(stdout);
  if (m) return { status: m[1] as FreeStatus, detail: (m[2] ?? '').trim().slice(0, 300) };
  return {
    status: 'failed',
    detail: `no result from the host (exit ${exitCode ?? 'none'}): ${stderr.trim().slice(0, 200)}`,
  };
}

/** The filesystems whose use changed, or the fullest one before: `/: 97% → 41% used, 1.2 GiB → 30.1 GiB free`. */
export function diskChange(before: readonly Filesystem[], after: readonly Filesystem[]): string[] {
  const lines: string[] = [];
  const fullest = [...before].sort((a, b) => b.usedPercent - a.usedPercent)[0];
  for (const b of before) {
    const a = after.find((f) => f.mount === b.mount && f.device === b.device);
    if (!a) continue;
    if (a.availKiB === b.availKiB && b !== fullest) continue;
    lines.push(
      `${b.mount}: ${b.usedPercent}% → ${a.usedPercent}% used, ${formatBytes(b.availKiB * 1024, ONE_DECIMAL)} → ${formatBytes(a.availKiB * 1024, ONE_DECIMAL)} free`,
    );
  }
  return lines;
}
