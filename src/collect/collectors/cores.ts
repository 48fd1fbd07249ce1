import type { Finding } from '../../analyze/report-schema.ts';
import { shellQuote } from '../transport.ts';
import type { Collector } from './collector.ts';

/**
 * Where core dumps are: inside containers (found with `docker diff`, which lists the files a
 * container wrote, running or stopped), on the host's filesystems, and in systemd-coredump's
 * store; plus how the host is set to write them. Every command is fixed, read-only text.
 */

export interface CoreFile {
  /** Container id, or null for a file on the host. */
  container: string | null;
  path: string;
  sizeBytes: number | null;
  mtime: Date | null;
  /**
   * The file on the host as `<device>:<inode>` (stat's %d:%i), or null when the host would not
   * say (a container layer the bot's user cannot read, an engine whose layout is not known). One
   * core can be found twice, in a container's diff and by the host search through the engine's
   * storage; this says it is one file.
   */
  file: string | null;
}

/** A container's writable layer, as a directory on the host. */
export interface ContainerLayer {
  container: string;
  dir: string;
}

/** Docker, or Podman where there is no Docker (same ps, diff, exec, system df); neither: nothing to do. */
const ENGINE = 'd=$(command -v docker || command -v podman) || exit 0';

const CORE_NAME = String.raw`(^|/)core(\.[0-9]+)?$`;

/**
 * Shell text that is true when the bytes on its stdin start with the ELF magic (\x7fELF): a file
 * named `core` only counts as a core dump when it is one (a `core` directory of JSON, a Python
 * package's `core` module, a text file are not).
 */
const IS_ELF = `[ "$(head -c 4 | od -An -tx1 | tr -d ' \\n')" = 7f454c46 ]`;

/**
 * The host directory of the container `$id`'s writable layer, in `$layer` (empty when unknown):
 * overlay drivers name it (UpperDir); vfs does not, so it is read where the engine keeps it,
 * Docker's layer database (mount-id) or containers/storage's containers.json (Podman), under the
 * engine's root directory. Read-only; readable by root (or whoever may read the engine's data).
 */
const LAYER_DIR = [
  `  IFS="$(printf '\\t')" read -r full driver layer <<EOF`,
  `$("$d" inspect -f '{{.Id}}{{"\\t"}}{{.GraphDriver.Name}}{{"\\t"}}{{with .GraphDriver.Data}}{{.UpperDir}}{{end}}' "$id" 2>/dev/null </dev/null)`,
  'EOF',
  '  if [ -z "$layer" ] && [ "$driver" = vfs ] && [ -n "$root" ]; then',
  '    m=$(cat "$root/image/vfs/layerdb/mounts/$full/mount-id" 2>/dev/null) ||',
  `      m=$(grep -o "\\"id\\":\\"$full\\"[^}]*\\"layer\\":\\"[0-9a-f]*\\"" "$root/vfs-containers/containers.json" 2>/dev/null | sed 's/.*"layer":"//; s/"$//')`,
  '    [ -n "$m" ] && layer="$root/vfs/dir/$m"',
  '  fi',
].join('\n');

/**
 * The paths of a `diff` listing that no other listed path is under. The engine lists the
 * directories it changed as well as the files (`C /app`, `A /app/core/_speedups.so`), and a
 * directory named `core`, a package of compiled modules, would otherwise be read through docker cp
 * as a tar of its files and pass for a core when its first file is ELF.
 */
const FILES_ONLY = String.raw`awk '{ p[NR] = $0; x = $0; while (sub(/\/[^\/]*$/, "", x) && x != "") d[x] = 1 } END { for (i = 1; i <= NR; i++) if (!(p[i] in d)) print p[i] }'`;

/**
 * Lines `<container>\t<size>\t<mtime>\t<file>\t<path>` (size and mtime `?` for a stopped
 * container whose layer is not known, file `?` when the layer cannot be stat'ed on the host), and a line
 * `#layer\t<container>\t<dir>` per container whose writable layer is known.
 */
export const containerCoresCommand = [
  ENGINE,
  `root=$("$d" info -f '{{.DockerRootDir}}' 2>/dev/null </dev/null || "$d" info -f '{{.Store.GraphRoot}}' 2>/dev/null </dev/null)`,
  // Four containers at a time: each takes several engine calls (inspect, diff, cp, exec) of tens of
  // milliseconds, which one after another made this the slowest step before the pull (1.9 s for
  // eight containers). Each line is printed whole by one printf, under PIPE_BUF (a longer path is
  // left out), so lines from containers looked at together never mix.
  'n=0',
  'for id in $("$d" ps -aq 2>/dev/null); do',
  '{',
  LAYER_DIR,
  `  [ -n "$layer" ] && printf '#layer\\t%s\\t%s\\n' "$id" "$layer"`,
  `  "$d" diff "$id" 2>/dev/null | sed -n 's/^[AC] //p' | ${FILES_ONLY} | grep -E '${CORE_NAME}' | while read -r path; do`,
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell's length of $path
  '    [ ${#path} -le 3500 ] || continue',
  // The first bytes through docker cp, which reads a stopped container too and needs no tools in it.
  `    "$d" cp "$id:$path" - 2>/dev/null </dev/null | tar -xOf - 2>/dev/null | ${IS_ELF} || continue`,
  // A stopped container runs nothing: its core is stat'ed in its writable layer on the host, when known.
  `    info=$("$d" exec "$id" stat -c '%s\t%Y' "$path" 2>/dev/null </dev/null) || info=$([ -n "$layer" ] && stat -c '%s\t%Y' "$layer$path" 2>/dev/null) || info="?\t?"`,
  `    file=$([ -n "$layer" ] && stat -c '%d:%i' "$layer$path" 2>/dev/null) || file="?"`,
  `    printf '%s\\t%s\\t%s\\t%s\\n' "$id" "$info" "$file" "$path"`,
  '  done',
  '} &',
  '  n=$((n + 1))',
  '  [ $((n % 4)) -ne 0 ] || wait',
  'done',
  'wait',
].join('\n');

/**
 * Lines `-\t<size>\t<mtime>\t<device>:<inode>\t<path>` for cores on the host's local
 * filesystems and in systemd-coredump's store.
 */
export const hostCoresCommand = (roots: readonly string[] = ['/']) =>
  [
    // `core` or `core.<digits>` only: `core.[0-9]*` alone also matches man pages such as core.5.gz.
    `find ${roots.map(shellQuote).join(' ')} -xdev -type f \\( -name core -o \\( -name 'core.[0-9]*' ! -name 'core.*[!0-9]*' \\) \\) -size +1k -printf '-\\t%s\\t%T@\\t%D:%i\\t%p\\n' 2>/dev/null | while IFS="$(printf '\\t')" read -r c s t f p; do { ${IS_ELF}; } < "$p" 2>/dev/null && printf '%s\\t%s\\t%s\\t%s\\t%s\\n' "$c" "$s" "$t" "$f" "$p"; done | head -n 200`,
    `find /var/lib/systemd/coredump -type f -printf '-\\t%s\\t%T@\\t%D:%i\\t%p\\n' 2>/dev/null | head -n 200`,
  ].join('; ');

export function parseCoreLines(output: string): CoreFile[] {
  const cores: CoreFile[] = [];
  for (const line of output.split('\n')) {
    if (line.startsWith('#')) continue;
    const [container, size, mtime, file, ...rest] = line.split('\t');
    const path = rest.join('\t');
    if (!container || !path.startsWith('/')) continue;
    const seconds = Number.parseFloat(mtime ?? '');
    cores.push({
      container: container === '-' ? null : container,
      path,
      sizeBytes: /^\d+$/.test(size ?? '') ? Number(size) : null,
      mtime: Number.isFinite(seconds) ? new Date(seconds * 1000) : null,
      file: /^\d+:\d+$/.test(file ?? '') ? file! : null,
    });
  }
  return cores;
}

/** The `#layer` lines of the container collector. */
export function parseLayerLines(output: string): ContainerLayer[] {
  const layers: ContainerLayer[] = [];
  for (const line of output.split('\n')) {
    const [tag, container, ...rest] = line.split('\t');
    const dir = rest.join('\t').replace(/\/+$/, '');
    if (tag === '#layer' && container && dir.startsWith('/')) layers.push({ container, dir });
  }
  return layers;
}

/** What the host search found beyond what the container collector had already. */
export interface HostCoresSeen {
  /** Cores found in the containers (their files on the host, their layers). */
  containerCores: readonly CoreFile[];
  layers: readonly ContainerLayer[];
}

/**
 * The host's cores that are not a container's core seen again through the engine's storage
 * (`/var/lib/docker/overlay2/<id>/diff/app/core` is container X's `/app/core`): the same file by
 * device and inode, or a path inside a container's writable layer, which becomes that container's
 * core (pulled with docker cp, as the others) when its diff did not list it. `sameFile` counts the
 * ones dropped.
 */
export function withoutContainerCores(
  host: readonly CoreFile[],
  seen: HostCoresSeen,
): { cores: CoreFile[]; sameFile: number } {
  const files = new Set(seen.containerCores.flatMap((c) => (c.file ? [c.file] : [])));
  const paths = new Set(seen.containerCores.map((c) => `${c.container}:${c.path}`));
  const cores: CoreFile[] = [];
  let sameFile = 0;
  for (const core of host) {
    if (core.file && files.has(core.file)) {
      sameFile++;
      continue;
    }
    const layer = seen.layers.find((l) => core.path.startsWith(`${l.dir}/`));
    if (layer) {
      const inside = core.path.slice(layer.dir.length);
      if (paths.has(`${layer.container}:${inside}`)) {
        sameFile++;
        continue;
      }
      paths.add(`${layer.container}:${inside}`);
      cores.push({ ...core, container: layer.container, path: inside });
      continue;
    }
    // A hard link found under two names on the host is one file too.
    if (core.file) files.add(core.file);
    cores.push(core);
  }
  return { cores, sameFile };
}

const gib = (bytes: number) =>
  bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${(bytes / 1024 ** 2).toFixed(1)} MiB`;

function describeCores(where: string, cores: CoreFile[], now: Date): Finding[] {
  if (cores.length === 0) return [];
  const total = cores.reduce((sum, c) => sum + (c.sizeBytes ?? 0), 0);
  const newest = cores
    .filter((c) => c.mtime)
    .sort((a, b) => b.mtime!.getTime() - a.mtime!.getTime())
    .slice(0, 8);
  const lines = (newest.length > 0 ? newest : cores.slice(0, 8)).map((c) => {
    const age = c.mtime
      ? `${Math.max(0, Math.round((now.getTime() - c.mtime.getTime()) / 60_000))} min ago`
      : 'age unknown';
    return `${c.container ? `${c.container.slice(0, 12)} ` : ''}${c.path} (${c.sizeBytes === null ? 'size unknown' : gib(c.sizeBytes)}, ${age})`;
  });
  if (cores.length > lines.length) lines.push(`+${cores.length - lines.length} more`);
  return [
    {
      severity: total >= 1024 ** 3 ? 'critical' : 'warning',
      title: `${cores.length} core dump${cores.length === 1 ? '' : 's'} ${where}${total > 0 ? `, ${gib(total)}` : ''}`,
      detail: lines.join('\n'),
    },
  ];
}

export const containerCores: Collector<{ now: Date }> = {
  name: 'core dumps in containers',
  command: () => containerCoresCommand,
  timeoutMs: 60_000,
  maxOutputBytes: 256 * 1024,
  parse(result, { now }) {
    const cores = parseCoreLines(result.stdout);
    return {
      findings: describeCores('in containers', cores, now),
      facts: { cores, layers: parseLayerLines(result.stdout) },
    };
  },
};

export const hostCores: Collector<{ now: Date; roots?: readonly string[]; seen?: HostCoresSeen }> = {
  name: 'core dumps on the host',
  command: ({ roots }) => hostCoresCommand(roots),
  timeoutMs: 60_000,
  maxOutputBytes: 256 * 1024,
  parse(result, { now, seen }) {
    const { cores, sameFile } = withoutContainerCores(parseCoreLines(result.stdout), {
      containerCores: seen?.containerCores ?? [],
      layers: seen?.layers ?? [],
    });
    const onHost = cores.filter((c) => c.container === null);
    const findings = describeCores('on the host', onHost, now);
    const inLayers = cores.length - onHost.length;
    if (inLayers > 0)
      findings.push(
        ...describeCores(
          "in containers' layers, not in their diff",
          cores.filter((c) => c.container !== null),
          now,
        ),
      );
    return { findings, facts: { cores, sameFile } };
  },
};

/** How the kernel writes cores, the shell's limit, and the kernel's recent "core dumped" lines. */
export const coreSettings: Collector = {
  name: 'core dump settings',
  command: () =>
    `cat /proc/sys/kernel/core_pattern; echo ---; ulimit -c; echo ---; (journalctl -q --no-pager -k --since -24h 2>/dev/null || dmesg 2>/dev/null) | grep -i 'core dumped' | tail -n 20`,
  timeoutMs: 15_000,
  maxOutputBytes: 64 * 1024,
  parse(result) {
    const [pattern = '', limit = '', log = ''] = result.stdout.split(/^---$/m).map((p) => p.trim());
    const lines = log.split('\n').filter(Boolean);
    const detail = [
      `kernel.core_pattern: ${pattern || '(unknown)'}`,
      `core size limit (ulimit -c): ${limit || '(unknown)'}`,
      ...(pattern.startsWith('|')
        ? ['Cores are piped to a helper (systemd-coredump or apport), not written next to the process.']
        : []),
      ...(lines.length > 0
        ? [`${lines.length} "core dumped" line(s) in the last day, latest: ${lines.at(-1)}`]
        : []),
    ];
    return {
      findings: [{ severity: 'info', title: 'How this host writes core dumps', detail: detail.join('\n') }],
      facts: { pattern, limit },
    };
  },
};

/** Docker's own accounting: images, containers' writable layers, volumes; and the biggest layers. */
export const dockerUsage: Collector = {
  name: 'docker disk usage',
  command: () =>
    `${ENGINE}; "$d" system df 2>&1; echo ---; "$d" ps -a -s --format '{{.ID}}\t{{.Names}}\t{{.Size}}' 2>&1 | head -n 200`,
  timeoutMs: 30_000,
  maxOutputBytes: 128 * 1024,
  parse(result) {
    if (!result.stdout.trim()) return { findings: [] };
    const [summary = '', containers = ''] = result.stdout.split(/^---$/m);
    const sized = containers
      .trim()
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((f) => f.length >= 3)
      .map(([id, name, size]) => ({
        id: id!,
        name: name!,
        size: size!,
        bytes: parseSize(size!.split(' ')[0]!),
      }))
      .sort((a, b) => b.bytes - a.bytes);
    const findings: Finding[] = [
      { severity: 'info', title: 'Docker disk usage', detail: summary.trim().slice(0, 1500) },
    ];
    if (sized[0] && sized[0].bytes >= 1024 ** 3) {
      findings.push({
        severity: 'warning',
        title: `Container ${sized[0].name} has written ${sized[0].size.split(' ')[0]} to its layer`,
        detail: [
          ...sized.slice(0, 5).map((c) => `${c.name} (${c.id}): ${c.size}`),
          ...(sized.length > 5 ? [`+${sized.length - 5} more`] : []),
        ].join('\n'),
      });
    }
    return { findings, facts: { containers: sized } };
  },
};

/** Docker's human sizes ("1.2GB", "512MB", "0B") in bytes (decimal units, as docker prints them). */
export function parseSize(text: string): number {
  const m = /^([\d.]+)\s*([kKMGT]?B)$/.exec(text.trim());
  if (!m) return 0;
  const unit = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[m[2] as 'B'] ?? 1;
  return Number(m[1]) * unit;
}
