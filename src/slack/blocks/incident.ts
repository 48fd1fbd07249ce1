import type { AlertLinks } from '../../alerts/links.ts';
import { formatBytes } from '../../format-bytes.ts';
import type { Incident, TimelineEntry } from '../../incidents/incidents.ts';
import {
  joinMrkdwn,
  type Mrkdwn,
  md,
  mentionUser,
  mrkdwnLink,
  mrkdwnSection,
  mrkdwnText,
  truncateMrkdwn,
} from './mrkdwn.ts';

/**
 * Block Kit for incident threads, pure. Written for a phone at midnight: one fact per line, no
 * tables, the status first. Every message carries `text` too (notifications and screen readers).
 * Titles, hosts, mounts, alert fields and findings come from outside: they reach mrkdwn through
 * `md` (mrkdwn.ts), escaped, in the blocks and in `text` alike.
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

function diskText(d: DiskUsage): Mrkdwn {
  if (d.status === 'resolved') return md`${d.mount} resolved`;
  return d.usedPercent === null ? md`${d.mount}` : md`${d.mount} ${d.usedPercent}% used`;
}

export function formatDuration(ms: number): string {
  const minutes = Math.max(0, Math.round(ms / 60_000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

const mention = (user: string | null) => (user ? mentionUser(user) : md`nobody yet`);

function clock(date: Date): string {
  return `${date.toISOString().slice(11, 16)} UTC`;
}

/** The buttons of a root message; their value is the incident's id. */
export const TAKE_COMMAND_ACTION = 'incident_take_command';
export const MITIGATED_ACTION = 'incident_mitigated';
export const RESOLVE_ACTION = 'incident_resolve';

/** What the root shows beyond the incident's row: links back to the alert, the analysis's headline. */
export interface RootExtras {
  links?: AlertLinks;
  /** The finding that answers the incident, once the analysis found it (outside text). */
  headline?: string;
  /** What the latest approved freeing gave back: the cores' bytes and each disk before → after. */
  freed?: { bytes: number; lines: readonly string[] };
  /** Incidents not resolved on other hosts with the same crash signature. */
  sameCrash?: readonly { id: number; host: string }[];
  /** The resolved incident this crash was seen in before: what it found and what was done. */
  recurrenceOf?: {
    id: number;
    host: string;
    headline?: string;
    freedBytes?: number;
    ran: readonly string[];
  };
}

const SAME_CRASH_SHOWN = 10;

/** `same crash on web-2, web-5: #12, #15` (plain text: hosts come from outside, escaped by md). */
export function sameCrashLine(others: readonly { id: number; host: string }[]): Mrkdwn {
  const shown = others.slice(0, SAME_CRASH_SHOWN);
  const hosts = [...new Set(shown.map((o) => o.host))];
  const more = others.length - shown.length;
  return md`*Same crash on* ${hosts.join(', ')}: ${shown.map((o) => `#${o.id}`).join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

/** `Seen before in #7 on web-1 (resolved): <headline>. Done: freed 3 GiB of cores; ran free, guard.` */
export function recurrenceLine(past: NonNullable<RootExtras['recurrenceOf']>): Mrkdwn {
  const done = [
    ...(past.freedBytes !== undefined ? [`freed ${formatBytes(past.freedBytes)} of cores`] : []),
    ...(past.ran.length > 0 ? [`ran ${past.ran.join(', ')}`] : []),
  ];
  return md`*Seen before* in #${past.id} on ${past.host} (resolved)${past.headline ? `: ${past.headline}` : ''}. *Done then:* ${done.length > 0 ? done.join('; ') : 'nothing recorded'}`;
}

/** The incident's id from a root button's value; undefined when it is not one. */
export function parseIncidentValue(value: string | undefined): number | undefined {
  const m = /^(\d{1,12})$/.exec(value ?? '');
  return m ? Number(m[1]) : undefined;
}

function rootButtons(incident: Incident): Block | undefined {
  if (incident.status === 'resolved') return undefined;
  const value = String(incident.id);
  const button = (action_id: string, text: string, style?: 'primary' | 'danger') => ({
    type: 'button',
    action_id,
    text: { type: 'plain_text', text },
    value,
    ...(style ? { style } : {}),
  });
  return {
    type: 'actions',
    block_id: `incident:${incident.id}`,
    elements: [
      button(TAKE_COMMAND_ACTION, 'Take command', 'primary'),
      ...(incident.status === 'mitigated' ? [] : [button(MITIGATED_ACTION, 'Mitigated')]),
      button(RESOLVE_ACTION, 'Resolve'),
    ],
  };
}

function rootLinks(links: AlertLinks | undefined): Mrkdwn | undefined {
  if (!links) return undefined;
  const parts = [
    ...(links.source ? [mrkdwnLink(links.source, md`Alert source`)] : []),
    ...(links.grafana ? [mrkdwnLink(links.grafana, md`Grafana`)] : []),
    ...(links.silence ? [mrkdwnLink(links.silence, md`Silence in Alertmanager`)] : []),
  ];
  return parts.length > 0 ? joinMrkdwn(parts, '  ·  ') : undefined;
}

/**
 * The root of an incident's thread; `alerts` adds a line counting them by state, `extras` the
 * headline once known and the links back to the alert. Buttons (Take command, Mitigated, Resolve)
 * while it is not resolved.
 */
export function incidentRoot(
  incident: Incident,
  disks: readonly DiskUsage[],
  now: Date,
  alerts?: AlertCounts,
  extras: RootExtras = {},
): SlackMessage {
  const open = incident.resolvedAt ?? now;
  const counted = [
    ...(alerts?.firing ? [`${alerts.firing} firing`] : []),
    ...(alerts?.resolved ? [`${alerts.resolved} resolved`] : []),
  ];
  const lines = [
    md`*Status:* ${incident.status}  ·  *Severity:* ${incident.severity}`,
    md`*Host:* ${incident.host}`,
    ...(disks.length > 0 ? [md`*Disk:* ${joinMrkdwn(disks.map(diskText), ', ')}`] : []),
    ...(counted.length > 0 ? [md`*Alerts:* ${counted.join(', ')}`] : []),
    md`*Commander:* ${mention(incident.commander)}`,
    incident.resolvedAt
      ? md`*Resolved* after ${formatDuration(open.getTime() - incident.openedAt.getTime())}`
      : md`*Open for* ${formatDuration(now.getTime() - incident.openedAt.getTime())} (since ${clock(incident.openedAt)})`,
    ...(incident.previousIncidentId ? [md`*Fired again:* follows #${incident.previousIncidentId}`] : []),
    ...(extras.headline ? [truncateMrkdwn(md`*Found:* ${extras.headline}`, 1000)] : []),
    ...(extras.freed
      ? [
          truncateMrkdwn(
            md`*Freed:* ${formatBytes(extras.freed.bytes)} of cores${extras.freed.lines.length > 0 ? `; ${extras.freed.lines.join('; ')}` : ''}`,
            500,
          ),
        ]
      : []),
    ...(extras.sameCrash && extras.sameCrash.length > 0
      ? [truncateMrkdwn(sameCrashLine(extras.sameCrash), 500)]
      : []),
    ...(extras.recurrenceOf ? [truncateMrkdwn(recurrenceLine(extras.recurrenceOf), 700)] : []),
  ];
  const links = rootLinks(extras.links);
  const buttons = rootButtons(incident);
  const title = md`${STATUS_EMOJI[incident.status]} #${incident.id} ${truncateMrkdwn(md`${incident.title}`, 2000)}`;
  return {
    text: md`${title} (${incident.status})`.text,
    blocks: [
      mrkdwnSection(md`*${title}*`),
      mrkdwnSection(joinMrkdwn(lines, '\n')),
      ...(buttons ? [buttons] : []),
      {
        type: 'context',
        elements: [
          ...(links ? [mrkdwnText(links)] : []),
          mrkdwnText(
            md`Updates arrive in this thread. In it, mention me: \`status\`, \`investigating\`, \`mitigated\`, \`resolve\`, \`summary\`.`,
          ),
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
  const text = truncateMrkdwn(
    md`${icon} ${alert.status === 'firing' ? 'Firing' : 'Resolved'}: ${alert.name}\n${alert.summary}`,
    2900,
  );
  return { text: text.text, blocks: [mrkdwnSection(text)] };
}

export function statusReply(incident: Incident, user: string): SlackMessage {
  const text = md`${STATUS_EMOJI[incident.status]} ${mention(user)} set #${incident.id} to *${incident.status}*`;
  return { text: text.text, blocks: [mrkdwnSection(text)] };
}

/** What the postmortem says beyond the incident's row and timeline: from its analysis and its runs. */
export interface SummaryFacts {
  /** The analysis's headline: what made the disk fill. */
  rootCause?: string;
  /** The crash signature, as describeSignature words it. */
  crash?: string;
  /** The request the workers held and the customer it names. */
  customer?: { key: string; id: string; request: string };
  freed?: { bytes: number; lines: readonly string[] };
  sameCrash?: readonly { id: number; host: string }[];
  recurrenceOf?: RootExtras['recurrenceOf'];
}

/**
 * The postmortem's starting point, in Markdown (a file: plain text, not mrkdwn): facts, the root
 * cause and the customer the analysis found, what was freed, the related incidents, then the
 * timeline from the database.
 */
export function summaryMarkdown(
  incident: Incident,
  entries: readonly TimelineEntry[],
  now: Date,
  facts: SummaryFacts = {},
): string {
  const end = incident.resolvedAt ?? now;
  const related = [
    ...(facts.sameCrash ?? []).map((o) => `- #${o.id} on ${o.host}: the same crash, at the same time`),
    ...(facts.recurrenceOf
      ? [
          `- #${facts.recurrenceOf.id} on ${facts.recurrenceOf.host} (resolved): the same crash before${facts.recurrenceOf.headline ? `; found: ${facts.recurrenceOf.headline}` : ''}${facts.recurrenceOf.freedBytes !== undefined ? `; freed ${formatBytes(facts.recurrenceOf.freedBytes)}` : ''}${facts.recurrenceOf.ran.length > 0 ? `; ran ${facts.recurrenceOf.ran.join(', ')}` : ''}`,
        ]
      : []),
  ];
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
    '## Root cause',
    '',
    facts.rootCause ?? '_Not found by the analysis; to fill in._',
    ...(facts.crash ? ['', `Crash: ${facts.crash}`] : []),
    ...(facts.customer
      ? [
          '',
          `Customer: ${facts.customer.key} ${facts.customer.id}, in the request the workers held:`,
          '',
          '```',
          facts.customer.request.replaceAll('```', 'ˋˋˋ'),
          '```',
        ]
      : []),
    '',
    '## What was done',
    '',
    facts.freed
      ? `Freed ${formatBytes(facts.freed.bytes)} of cores${facts.freed.lines.length > 0 ? `; ${facts.freed.lines.join('; ')}` : ''}.`
      : 'Nothing freed by the bot.',
    '',
    '## Related incidents',
    '',
    ...(related.length > 0 ? related : ['None with the same crash.']),
    '',
    '## Timeline (UTC)',
    '',
    ...entries.map((e) => `- ${e.at.toISOString().replace('T', ' ').slice(0, 19)}  ${e.what}`),
    '',
    '## Impact',
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

/** Sections of one reply: Slack allows 50 blocks; the rest are counted in a last line. */
const FINDINGS_SHOWN = 40;

/**
 * Findings as one thread reply: each its title on a line and its detail under it, in a section
 * of its own; `text` (the notification) lists the titles.
 */
export function findingsReply(findings: readonly FindingNotice[], heading?: Mrkdwn): SlackMessage {
  const shown = findings.slice(0, FINDINGS_SHOWN);
  const blocks: Block[] = heading ? [mrkdwnSection(heading)] : [];
  blocks.push(
    ...shown.map((f) =>
      mrkdwnSection(truncateMrkdwn(md`${SEVERITY_EMOJI[f.severity]} *${f.title}*\n${f.detail}`, 1500)),
    ),
  );
  const left = findings.length - shown.length;
  if (left > 0)
    blocks.push({
      type: 'context',
      elements: [mrkdwnText(md`and ${left} more: \`/investigate summary\` lists them all`)],
    });
  const titles = joinMrkdwn(
    [...(heading ? [heading] : []), ...findings.map((f) => md`${SEVERITY_EMOJI[f.severity]} ${f.title}`)],
    '\n',
  );
  return { text: truncateMrkdwn(titles, 3000).text, blocks };
}
