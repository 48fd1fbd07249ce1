import type { CheckResult } from '../check.ts';
import type { SlackAnswer, SlackAsk } from '../slack-client.ts';

type SlackChannel = { id: string; name: string; is_member?: boolean; is_archived?: boolean };

const part = 'slack channel';
const invite = (bot: string, name: string) => `type /invite @${bot} in ${name}`;

const refused = (channel: string, answer: SlackAnswer, method: string): CheckResult =>
  answer.error === 'missing_scope'
    ? {
        part,
        ok: false,
        detail: `cannot look up INCIDENT_CHANNEL ${channel}: the bot token lacks the ${answer.needed ?? 'channels:read'} scope; add it and reinstall the app`,
      }
    : {
        part,
        ok: false,
        detail: `cannot look up INCIDENT_CHANNEL ${channel}: ${method} failed (${answer.error})`,
      };

/** INCIDENT_CHANNEL (an id, or a name with or without #) exists, is not archived and has the bot in it. */
export async function slackChannelCheck(ask: SlackAsk, channel: string, bot: string): Promise<CheckResult> {
  const found = /^[CG][A-Z0-9]{6,}$/.test(channel)
    ? await channelById(ask, channel, bot)
    : await channelByName(ask, channel, bot);
  if (!('id' in found)) return found;
  const label = `#${found.name} (${found.id})`;
  if (found.is_archived)
    return {
      part,
      ok: false,
      detail: `${label} is archived: unarchive it or set INCIDENT_CHANNEL to another channel`,
    };
  if (!found.is_member)
    return {
      part,
      ok: false,
      detail: `the bot is not a member of ${label}, so every post there fails with not_in_channel: ${invite(bot, `#${found.name}`)} (or add the app under the channel's Integrations tab)`,
    };
  return { part, ok: true, detail: `${label} exists and the bot is a member` };
}

async function channelById(ask: SlackAsk, channel: string, bot: string): Promise<SlackChannel | CheckResult> {
  const info = await ask('conversations.info', { channel });
  if (!info.ok && info.error === 'channel_not_found')
    return {
      part,
      ok: false,
      detail: `INCIDENT_CHANNEL ${channel}: Slack knows no such channel, or it is private and the bot is not in it: check the id, or ${invite(bot, 'that channel')}`,
    };
  if (!info.ok) return refused(channel, info, 'conversations.info');
  return info.channel as SlackChannel;
}

async function channelByName(
  ask: SlackAsk,
  channel: string,
  bot: string,
): Promise<SlackChannel | CheckResult> {
  const name = channel.replace(/^#/, '');
  let cursor = '';
  for (let page = 0; page < 50; page++) {
    const list = await ask('conversations.list', {
      types: 'public_channel,private_channel',
      exclude_archived: true,
      limit: 1000,
      ...(cursor ? { cursor } : {}),
    });
    if (!list.ok) return refused(channel, list, 'conversations.list');
    const found = (list.channels as SlackChannel[] | undefined)?.find((c) => c.name === name);
    if (found) return found;
    cursor = (list.response_metadata as { next_cursor?: string } | undefined)?.next_cursor ?? '';
    if (!cursor) break;
  }
  return {
    part,
    ok: false,
    detail: `INCIDENT_CHANNEL: the bot sees no channel named #${name}: create it, or if it is private ${invite(bot, `#${name}`)}; or set INCIDENT_CHANNEL to the channel's id (C…, at the bottom of the channel's About tab)`,
  };
}
