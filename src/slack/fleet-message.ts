import { randomUUID } from 'node:crypto';
import { fleetOverview } from '../incidents/signature.ts';
import type { Logger } from '../log.ts';
import {
  claimChannelMessage,
  createChannelMessage,
  getChannelMessage,
  recordChannelMessageFailed,
  recordChannelMessageSent,
} from '../store/channel-messages.ts';
import type { Db } from '../store/db.ts';
import { latestRootChannel } from '../store/incident-roots.ts';
import { fleetMessage } from './blocks/fleet.ts';
import type { SlackMessage } from './blocks/incident.ts';
import { fleetIncidents } from './fleet.ts';
import { OUTBOX_DEFAULTS, type OutboxOptions } from './outbox-options.ts';
import { findTagged, outboxTag, type SlackPoster } from './poster.ts';
import { rootHash } from './root-message.ts';

/** The key of the fleet's one channel message (channel_messages). */
export const FLEET_MESSAGE_KEY = 'fleet';

/**
 * Posts or edits the fleet's one channel message (blocks/fleet.ts): posted once two hosts have
 * incidents not resolved at once (one host is its own thread's business), then edited in place
 * whenever the fleet changes, to "no incident open" at the end. It goes to the channel of the
 * latest incident's root. The row is claimed while Slack is called, as the outbox claims a
 * message, so two processes neither post it twice nor edit it at once; a post whose answer was
 * lost is found again by its metadata (findTagged) before posting. A failure is logged and left
 * for the next drain.
 */
export async function refreshFleetMessage(
  db: Db,
  slack: SlackPoster,
  log: Pick<Logger, 'warn'>,
  options: Pick<OutboxOptions, 'claimTimeoutMs'> = OUTBOX_DEFAULTS,
): Promise<void> {
  const overview = fleetOverview(await fleetIncidents(db));
  const message = fleetMessage(overview);
  const hash = rootHash(message);
  const row = await getChannelMessage(db, FLEET_MESSAGE_KEY);
  if (row?.hash === hash) return;
  if (!row?.ts && overview.hosts.length < 2) return;
  if (!row) {
    const channel = await latestRootChannel(db);
    if (!channel) return;
    await createChannelMessage(db, FLEET_MESSAGE_KEY, channel);
  }
  const token = randomUUID();
  const held = await claimChannelMessage(db, FLEET_MESSAGE_KEY, token, options.claimTimeoutMs);
  // Another sender holds it: it renders the fleet as it is when its call is done, or the next drain does.
  if (!held) return;
  try {
    const ts = await sendFleetMessage(slack, held, message);
    await recordChannelMessageSent(db, FLEET_MESSAGE_KEY, token, { ts, hash });
  } catch (error) {
    log.warn({ err: error }, 'could not post or edit the fleet message; the next drain tries again');
    const reason = error instanceof Error ? error.message : String(error);
    await recordChannelMessageFailed(db, FLEET_MESSAGE_KEY, token, reason);
  }
}

/** Edits the message where it is (or where a lost post put it), else posts it; its ts. */
async function sendFleetMessage(
  slack: SlackPoster,
  held: { channel: string; ts: string | null },
  message: SlackMessage,
): Promise<string | null> {
  const tag = outboxTag(`channel:${FLEET_MESSAGE_KEY}`);
  const ts = held.ts ?? (await findTagged(slack, { channel: held.channel }, tag)) ?? null;
  const { text, blocks } = message;
  if (ts) {
    await slack.update({ channel: held.channel, ts, text, blocks });
    return ts;
  }
  return (await slack.postMessage({ channel: held.channel, text, blocks, metadata: tag })).ts ?? null;
}
