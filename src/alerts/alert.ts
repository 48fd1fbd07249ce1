/**
 * One alert, whatever sent it: what the intake stores, groups into incidents and shows in Slack.
 */
export interface NormalizedAlert {
  source: 'alertmanager' | 'grafana' | 'generic';
  /** Stable identity of the alert across deliveries (Alertmanager's fingerprint, or derived). */
  fingerprint: string;
  status: 'firing' | 'resolved';
  name: string;
  /** The affected host, from instance/host/hostname/nodename labels (instance without its port). */
  host: string | null;
  /** What is wrong, for grouping: 'disk' for filesystem alerts, else the alert's name. */
  problem: string;
  summary: string;
  severity: 'critical' | 'warning' | 'info';
  labels: Record<string, string>;
  startsAt: string | null;
  endsAt: string | null;
  /** For disk alerts, what is known of the filesystem. */
  mount: string | null;
  usedPercent: number | null;
}

/** Alerts about full filesystems (node_exporter's node_filesystem_*, "DiskFull", "inodes"...). */
const DISK_NAME = /disk|filesystem|file_system|\bfs\b|volume|inode|storage|space/i;
const DISK_EXPR = /node_filesystem_(avail|free|size|files)|disk_used_percent|disk_free|win_logical_disk/i;

export function isDiskAlert(name: string, labels: Record<string, string>, text: string): boolean {
  return DISK_NAME.test(name) || 'mountpoint' in labels || 'fstype' in labels || DISK_EXPR.test(text);
}

/** instance "web-1:9100" → "web-1"; IPv6 "[::1]:9100" → "::1". */
export function hostFromLabels(labels: Record<string, string>): string | null {
  for (const key of ['host', 'hostname', 'nodename', 'node', 'instance']) {
    const value = labels[key]?.trim();
    if (!value) continue;
    const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(value);
    if (v6) return v6[1]!;
    return value.replace(/:\d+$/, '');
  }
  return null;
}

export function severityOf(value: string | undefined): NormalizedAlert['severity'] {
  const v = (value ?? '').toLowerCase();
  if (/crit|page|high|error|emerg|alert|p1/.test(v)) return 'critical';
  if (/info|low|none|p4|p5/.test(v)) return 'info';
  return 'warning';
}

/** Incidents group by host and problem: one open thread per host for a full disk. */
export function groupKey(alert: Pick<NormalizedAlert, 'host' | 'problem'>): string | null {
  return alert.host ? `${alert.host}:${alert.problem}` : null;
}

/**
 * Identity of one delivery of one alert state: a re-sent firing alert (Alertmanager's
 * repeat_interval, an HA pair delivering twice) has the same key and is stored once.
 */
export function dedupKey(alert: NormalizedAlert): string {
  return `${alert.source}:${alert.fingerprint}:${alert.status}:${alert.startsAt ?? ''}`;
}

/**
 * The used percent in an alert's words: "has only 3.12% available space left" is 96.88% used,
 * "disk usage is 97%" is 97. Null when the text says neither.
 */
export function parseUsedPercent(text: string): number | null {
  const free = /(\d+(?:\.\d+)?)\s*%\s*(?:of\s+)?(?:space\s+|disk\s+)?(?:available|free|left|remaining)/i.exec(
    text,
  );
  if (free) return Math.round((100 - Number(free[1])) * 100) / 100;
  const used =
    /(\d+(?:\.\d+)?)\s*%\s*(?:used|full|usage|utili[sz]ed)|(?:usage|used|full)\D{0,20}?(\d+(?:\.\d+)?)\s*%/i.exec(
      text,
    );
  if (used) return Number(used[1] ?? used[2]);
  return null;
}
