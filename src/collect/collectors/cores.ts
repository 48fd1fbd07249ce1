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

/** Lines `<container>\t<size>\t<mtime>\t<path>`; size and mtime are `?` for stopped containers. */
export const containerCoresCommand = [
  ENGINE,
  'for id in $("$d" ps -aq 2>/dev/null); do',
  `  "$d" diff "$id" 2>/dev/null | sed -n 's/^[AC] //p' | grep -E '${CORE_NAME}' | while read -r path; do`,
  // The first bytes through docker cp, which reads a stopped container too and needs no tools in it.
  `    "$d" cp "$id:$path" - 2>/dev/null </dev/null | tar -xOf - 2>/dev/null | ${IS_ELF} || continue`,
  `    info=$("$d" exec "$id" stat -c '%s\t%Y' "$path" 2>/dev/null </dev/null) || info="?\t?"`,
  `    printf '%s\t%s\t%s\n' "$id" "$info" "$path"`,
  '  done',
  'done',
].join('\n');

/** Lines `-\t<size>\t<mtime>\t<path>` for cores on the host's local filesystems and in systemd-coredump's store. */
export const hostCoresCommand = (roots: readonly string[] = ['/']) =>
  [
    // `core` or `core.<digits>` only: `core.[0-9]*` alone also matches man pages such as core.5.gz.
    `find ${roots.map(shellQuote).join(' ')} -xdev -type f \\( -name core -o \\( -name 'core.[0-9]*' ! -name 'core.*[!0-9]*' \\) \\) -size +1k -printf '-\\t%s\\t%T@\\t%p\\n' 2>/dev/null | while IFS="$(printf '\\t')" read -r c s t p; do { ${IS_ELF}; } < "$p" 2>/dev/null && printf '%s\\t%s\\t%s\\t%s\\n' "$c" "$s" "$t" "$p"; done | head -n 200`,
    `find /var/lib/systemd/coredump -type f -printf '-\\t%s\\t%T@\\t%p\\n' 2>/dev/null | head -n 200`,
  ].join('; ');

export function parseCoreLines(output: string): CoreFile[] {
  const cores: CoreFile[] = [];
  for (const line of output.split('\n')) {
    const [container, size, mtime, ...rest] = line.split('\t');
    const path = rest.join('\t');
    if (!container || !path) continue;
    const seconds = Number.parseFloat(mtime ?? '');
    cores.push({
      container: container === '-' ? null : container,
      path,
      sizeBytes: /^\d+$/.test(size ?? '') ? Number(size) : null,
      mtime: Number.isFinite(seconds) ? new Date(seconds * 1000) : null,
    });
  }
  return cores;
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
    return { findings: describeCores('in containers', cores, now), facts: { cores } };
  },
};

export const hostCores: Collector<{ now: Date; roots?: readonly string[] }> = {
  name: 'core dumps on the host',
  command: ({ roots }) => hostCoresCommand(roots),
  timeoutMs: 60_000,
  maxOutputBytes: 256 * 1024,
  parse(result, { now }) {
    const cores = parseCoreLines(result.stdout);
    return { findings: describeCores('on the host', cores, now), facts: { cores } };
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
