import type { Finding } from '../../analyze/report-schema.ts';
import { shellQuote } from '../transport.ts';
import type { Collector } from './collector.ts';

/** Filesystems and their use, from `df -PT` (bytes) and `df -Pi` (inodes), both POSIX format. */
export interface Filesystem {
  device: string;
  type: string;
  mount: string;
  sizeKiB: number;
  usedKiB: number;
  availKiB: number;
  usedPercent: number;
  inodesUsedPercent: number | null;
}

const PSEUDO = new Set([
  'tmpfs',
  'devtmpfs',
  'proc',
  'sysfs',
  'overlay',
  'squashfs',
  'cgroup',
  'cgroup2',
  'devpts',
  'mqueue',
  'nsfs',
]);

export function parseDf(output: string): Filesystem[] {
  const [bytesPart = '', inodesPart = ''] = output.split(/^---$/m);
  const rows = (text: string) =>
    text
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 6);
  const inodes = new Map<string, number>();
  for (const f of rows(inodesPart)) {
    const pct = Number.parseInt(f[4]!, 10);
    if (Number.isFinite(pct)) inodes.set(f.slice(5).join(' '), pct);
  }
  const filesystems: Filesystem[] = [];
  for (const f of rows(bytesPart)) {
    if (f.length < 7) continue;
    const [device, type, size, used, avail, capacity] = f;
    const mount = f.slice(6).join(' ');
    if (PSEUDO.has(type!)) continue;
    filesystems.push({
      device: device!,
      type: type!,
      mount,
      sizeKiB: Number(size),
      usedKiB: Number(used),
      availKiB: Number(avail),
      usedPercent: Number.parseInt(capacity!, 10),
      inodesUsedPercent: inodes.get(mount) ?? null,
    });
  }
  return filesystems;
}

const gib = (kib: number) => `${(kib / 1024 / 1024).toFixed(1)} GiB`;

export const diskUsage: Collector = {
  name: 'disk usage',
  command: () => 'df -PT; echo ---; df -Pi',
  timeoutMs: 15_000,
  maxOutputBytes: 256 * 1024,
  parse(result) {
    const filesystems = parseDf(result.stdout);
    const findings: Finding[] = [];
    for (const fs of filesystems) {
      if (fs.usedPercent >= 90) {
        findings.push({
          severity: fs.usedPercent >= 97 ? 'critical' : 'warning',
          title: `${fs.mount} is ${fs.usedPercent}% full (${gib(fs.availKiB)} free of ${gib(fs.sizeKiB)})`,
          detail: `${fs.device} (${fs.type})`,
        });
      }
      if (fs.inodesUsedPercent !== null && fs.inodesUsedPercent >= 90) {
        findings.push({
          severity: fs.inodesUsedPercent >= 97 ? 'critical' : 'warning',
          title: `${fs.mount} has used ${fs.inodesUsedPercent}% of its inodes`,
          detail: 'Many small files: free space alone will not help.',
        });
      }
    }
    if (filesystems.length === 0) {
      findings.push({
        severity: 'warning',
        title: 'df printed no filesystems',
        detail: result.stderr.slice(0, 300) || '(no output)',
      });
    }
    return { findings, facts: { filesystems } };
  },
};

/** The largest directories on one filesystem, two levels deep, without crossing into others. */
export const largestDirectories: Collector<{ mount: string }> = {
  name: 'largest directories',
  command: ({ mount }) => `du -x -k -d 2 ${shellQuote(mount)} 2>/dev/null | sort -rn | head -15`,
  timeoutMs: 60_000,
  maxOutputBytes: 64 * 1024,
  parse(result, { mount }) {
    const entries = result.stdout
      .split('\n')
      .map((l) => /^(\d+)\s+(.+)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ kib: Number(m[1]), path: m[2]! }))
      .filter((e) => e.path !== mount);
    const findings: Finding[] =
      entries.length === 0
        ? []
        : [
            {
              severity: 'info',
              title: `Largest directories on ${mount}`,
              detail: [
                ...entries.slice(0, 8).map((e) => `${gib(e.kib)}  ${e.path}`),
                ...(entries.length > 8 ? [`+${entries.length - 8} more`] : []),
              ].join('\n'),
            },
          ];
    return { findings, facts: { directories: entries } };
  },
};
