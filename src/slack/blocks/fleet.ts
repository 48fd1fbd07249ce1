import { formatBytes } from '../../format-bytes.ts';
import { describeSignature, type FleetOverview } from '../../incidents/signature.ts';
import type { Block, SlackMessage } from './incident.ts';
import { joinMrkdwn, type Mrkdwn, md, mrkdwnSection, mrkdwnText, truncateMrkdwn } from './mrkdwn.ts';

/**
 * The fleet at a glance, pure: one channel message (edited in place, slack/fleet.ts) with the
 * hosts that have an incident not resolved, how many are open and mitigated, the bytes of their
 * cores, and their crashes, each with its hosts and incidents. Signatures and hosts come from
 * outside (the cores, the alerts): they reach mrkdwn through `md`, escaped. No clock in it: a
 * rendering changes only when the fleet does, so an unchanged fleet costs no chat.update.
 */

/** Sections of crashes shown; Slack allows 50 blocks a message. */
const SIGNATURES_SHOWN = 10;
const REFS_SHOWN = 12;

const refs = (incidents: readonly { id: number }[]) => {
  const shown = incidents.slice(0, REFS_SHOWN).map((i) => `#${i.id}`);
  const more = incidents.length - shown.length;
  return `${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
};

export function fleetMessage(overview: FleetOverview): SlackMessage {
  const live = overview.open + overview.mitigated;
  const title =
    live === 0
      ? md`:white_check_mark: *Fleet:* no incident open`
      : md`:earth_africa: *Fleet:* ${overview.hosts.length} host${overview.hosts.length === 1 ? '' : 's'} with incidents  ·  ${overview.open} open  ·  ${overview.mitigated} mitigated  ·  ${formatBytes(overview.coreBytes)} of cores`;
  const blocks: Block[] = [mrkdwnSection(title)];
  if (overview.hosts.length > 0)
    blocks.push(mrkdwnSection(truncateMrkdwn(md`*Hosts:* ${overview.hosts.join(', ')}`, 3000)));
  const shown = overview.signatures.slice(0, SIGNATURES_SHOWN);
  for (const s of shown) {
    const lines: Mrkdwn[] = [
      md`*${describeSignature(s.signature)}*`,
      md`${s.hosts.length} host${s.hosts.length === 1 ? '' : 's'} (${s.hosts.join(', ')}): ${refs(s.incidents)}  ·  ${formatBytes(s.coreBytes)} of cores`,
    ];
    blocks.push(mrkdwnSection(truncateMrkdwn(joinMrkdwn(lines, '\n'), 3000)));
  }
  const left = overview.signatures.length - shown.length;
  const notes = [
    ...(left > 0 ? [md`and ${left} more crash${left === 1 ? '' : 'es'}`] : []),
    ...(overview.unknown > 0
      ? [md`${overview.unknown} incident${overview.unknown === 1 ? '' : 's'} whose crash is not known yet`]
      : []),
    md`Edited in place as incidents change; each incident's thread has the details.`,
  ];
  blocks.push({ type: 'context', elements: [mrkdwnText(truncateMrkdwn(joinMrkdwn(notes, '  ·  '), 2000))] });
  return { text: truncateMrkdwn(title, 3000).text, blocks };
}
