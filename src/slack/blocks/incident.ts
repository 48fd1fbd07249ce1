import type { Incident, TimelineEntry } from '../../incidents/incidents.ts';

/**
 * Block Kit for incident threads, pure. Written for a phone at midnight: one fact per line, no
 * tables, the status first. Every message carries `text` too (notifications and screen readers).
 */

export interface Block {
  type: string;
  [key: string]: unknown;
}

export interface SlackMessage {
  text: string;
  blocks: Block[];
}

const STATUS_EMOJI: Record<Incident['status'], string> = {
  open: ':rotating_light:',
  investigating: ':mag:',
  mitigated: ':adhesive_bandage:',
  resolved: ':white_check_mark:',
};

export interface DiskUsage {
  mount: string;
  usedPercent: number | null;
  /**
   * The latest state of the mount's alert (default firing). A resolved mount shows no percentage:
   * the one its alert carried is from when it fired.
   */
  status?: 'firing' | 'resolved';
}

/** An incident's alerts by their latest state, one per alert (fingerprint). */
export interface AlertCounts {
  firing: number;
  resolved: number;
}

function diskText(d: DiskUsage): string {
  if (d.status === 'resolved') return `${d.mount} resolved`;
  return d.usedPercent === null ? d.mount : `${d.mount} ${d.usedPercent}% used`;
}

export function formatDuration(ms: number): string {
  const minutes = Math.max(0, Math.round(ms / 60_000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

const mention = (user: string | null) =>
  user ? (user.startsWith('U') || user.startsWith('W') ? `<@${user}>` : user) : 'nobody yet';

function clock(date: Date): string {
  return `${date.toISOString().slice(11, 16)} UTC`;
}

/** The root of an incident's thread; `alerts` adds a line counting them by state. */
export function incidentRoot(
  incident: Incident,
  disks: readonly DiskUsage[],
  now: Date,
  alerts?: AlertCounts,
): SlackMessage {
  const open = incident.resolvedAt ?? now;
  const counted = [
    ...(alerts?.firing ? [`${alerts.firing} firing`] : []),
    ...(alerts?.resolved ? [`${alerts.resolved} resolved`] : []),
  ];
  const lines = [
    `*Status:* ${incident.status}  ·  *Severity:* ${incident.severity}`,
    `*Host:* ${incident.host}`,
    ...(disks.length > 0 ? [`*Disk:* ${disks.map(diskText).join(', ')}`] : []),
    ...(counted.length > 0 ? [`*Alerts:* ${counted.join(', ')}`] : []),
    `*Commander:* ${mention(incident.commander)}`,
    incident.resolvedAt
      ? `*Resolved* after ${formatDuration(open.getTime() - incident.openedAt.getTime())}`
      : `*Open for* ${formatDuration(now.getTime() - incident.openedAt.getTime())} (since ${clock(incident.openedAt)})`,
    ...(incident.previousIncidentId ? [`*Fired again:* follows #${incident.previousIncidentId}`] : []),
  ];
  const title = `${STATUS_EMOJI[incident.status]} #${incident.id} ${incident.title}`;
  return {
    text: `${title} (${incident.status})`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${title}*` } },
      { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') } },
      {
        type: 'context',
        elements: [
          {
            type: 'mrkdwn',
            text: `Updates arrive in this thread. In it, mention me: \`status\`, \`investigating\`, \`mitigated\`, \`resolve\`, \`summary\`.`,
          },
        ],
      },
    ],
  };
}

export interface AlertNotice {
  status: 'firing' | 'resolved';
  name: string;
  summary: string;
}

export function alertReply(alert: AlertNotice): SlackMessage {
  const icon = alert.status === 'firing' ? ':fire:' : ':large_green_circle:';
  const text = `${icon} ${alert.status === 'firing' ? 'Firing' : 'Resolved'}: ${alert.name}\n${alert.summary}`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

export function statusReply(incident: Incident, user: string): SlackMessage {
  const text = `${STATUS_EMOJI[incident.status]} ${mention(user)} set #${incident.id} to *${incident.status}*`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

/** The postmortem's starting point, in Markdown: facts, then the timeline from the database. */
export function summaryMarkdown(incident: Incident, entries: readonly TimelineEntry[], now: Date): string {
  const end = incident.resolvedAt ?? now;
  const lines = [
    `# Incident #${incident.id}: ${incident.title}`,
    '',
    `- Status: ${incident.status}`,
    `- Severity: ${incident.severity}`,
    `- Host: ${incident.host}`,
    `- Commander: ${incident.commander ?? 'none'}`,
    `- Opened: ${incident.openedAt.toISOString()} by ${incident.openedBy}`,
    `- ${incident.resolvedAt ? `Resolved: ${incident.resolvedAt.toISOString()}` : 'Not resolved yet'} (${formatDuration(end.getTime() - incident.openedAt.getTime())})`,
    ...(incident.previousIncidentId ? [`- Follows incident #${incident.previousIncidentId}`] : []),
    '',
    '## Timeline (UTC)',
    '',
    ...entries.map((e) => `- ${e.at.toISOString().replace('T', ' ').slice(0, 19)}  ${e.what}`),
    '',
    '## Impact',
    '',
    '_To fill in._',
    '',
    '## Root cause',
    '',
    '_To fill in._',
    '',
    '## Follow-ups',
    '',
    '_To fill in._',
    '',
  ];
  return lines.join('\n');
}

const SEVERITY_EMOJI = {
  critical: ':red_circle:',
  warning: ':large_orange_circle:',
  info: ':large_blue_circle:',
} as const;

export interface FindingNotice {
  severity: 'critical' | 'warning' | 'info';
  title: string;
  detail: string;
}

/** A finding as a thread reply: the title on its own line, the detail under it. */
export function findingReply(finding: FindingNotice): SlackMessage {
  const text = `${SEVERITY_EMOJI[finding.severity]} *${finding.title}*\n${finding.detail}`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 2900) } }] };
}
