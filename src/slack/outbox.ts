import assert from 'node:assert/strict';
import type { Clock } from '../clock.ts';
import { getIncident, type Incident } from '../incidents/incidents.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import {
  type ClaimedMessage,
  claimNextMessage,
  type FileBody,
  forgetUpload,
  markDead,
  type OutboxBody,
  recordFilePosted,
  recordReplyPosted,
  recordRootPosted,
  recordUpload,
  releaseClaim,
  releaseForRetry,
  renewClaim,
} from '../store/outbox.ts';
import { alertReply, type SlackMessage } from './blocks/incident.ts';
import { refreshFleetMessage } from './fleet-message.ts';
import { keepClaim, OUTBOX_DEFAULTS, type OutboxOptions, retryDelayMs } from './outbox-options.ts';
import { findSharedFile, findTagged, outboxTag, type SlackPoster } from './poster.ts';
import { refreshRoot, refreshStaleRoots, renderRoot, rootHash } from './root-message.ts';
import { sendPendingEdits } from './thread-edits.ts';

/**
 * Posts what the intake and the commands queued in thread_messages: the root of each incident,
 * then its replies in the thread, in order. Each message is claimed first (SKIP LOCKED, the claim
 * naming its holder), so any number of bot processes can drain the outbox without posting a
 * message twice. Slack's 429s are waited out by the Web API client (it honours Retry-After).
 *
 * A claim is renewed while its post is in flight. A fixed claim timeout could not be made safely
 * longer than the post: the Web API client (app.ts) makes up to 4 attempts, each may wait out a
 * Retry-After of whatever length Slack sends, its queue is paused by the 429s of other calls too,
 * and its requests have no timeout of their own, so the call has no worst case to outlast. Had a
 * claim expired under a post still waiting out a 429, another process would have taken the message
 * and posted it a second time. So the poster renews the claim every `claimRenewMs`, and a claim
 * expires `claimTimeoutMs` after its last renewal: only when its poster died (or could not reach
 * the database for that long); the message is then posted by whoever takes it over.
 *
 * A message that fails anyway (an `ok:false`, a 5xx after the client's retries, the network) does
 * not stop the drain: it is released with a `not_before` that grows with its attempts
 * (`retryDelayMs`) and the drain goes on with other incidents' messages. An incident's replies
 * keep their order: a reply is not posted while an earlier reply of its incident is unposted, and
 * no reply before its root. After `maxAttempts` the message is marked dead (`dead_at`), logged as
 * an error and counted in /metrics; the replies behind it then go on, so one bad message does not
 * silence a thread.
 *
 * Edits of a posted message (thread-edits.ts) go through here too, one at a time per message and
 * always its latest body (sendEdit): two chat.updates of one message are never in flight at once,
 * so Slack never ends on an older rendering. The drain sends the edits that failed or whose
 * sender died.
 */

/** How a process stops draining: no new claims once `stopping()`, and the claims it holds in `held`. */
export interface DrainControl {
  stopping?: () => boolean;
  /** Message id → claim token of the posts in flight, so a shutdown can release them. */
  held?: Map<number, string>;
}

/**
 * Posts everything postable, `concurrency` messages at a time (each from a different thread, as
 * claimNextMessage only offers a thread's next message once the one before it is posted); returns
 * how many messages were posted.
 */
export async function drainOutbox(
  db: Db,
  slack: SlackPoster,
  log: Logger,
  now: Clock,
  options: Partial<OutboxOptions> = {},
  control: DrainControl = {},
): Promise<number> {
  const settings = { ...OUTBOX_DEFAULTS, ...options };
  assert(
    settings.claimRenewMs > 0 && settings.claimRenewMs * 2 <= settings.claimTimeoutMs,
    'an outbox claim must be renewed at least twice within its timeout (claimRenewMs <= claimTimeoutMs / 2)',
  );
  assert(
    Number.isInteger(settings.concurrency) && settings.concurrency >= 1,
    'concurrency must be 1 or more',
  );
  let posted = 0;
  const poster = async () => {
    for (;;) {
      if (control.stopping?.()) return;
      const message = await claimNextMessage(db, settings.claimTimeoutMs);
      if (!message) return;
      control.held?.set(message.id, message.claimedBy);
      try {
        if (await postClaimed(db, slack, log, message, now, settings)) posted++;
      } finally {
        control.held?.delete(message.id);
      }
    }
  };
  await Promise.all(Array.from({ length: settings.concurrency }, poster));
  // Edits made while their message was being posted, edits Slack refused, edits whose sender died.
  if (!control.stopping?.()) await sendPendingEdits(db, slack, log, settings);
  const refreshed = control.stopping?.() ? 0 : await refreshStaleRoots(db, slack, log, now());
  // The fleet changes when incidents do, and every change of one posts a message (a root, a status
  // or alert reply) or marks roots stale: a drain that did neither leaves the fleet message be and
  // spends no read of the whole fleet.
  if (!control.stopping?.() && (posted > 0 || refreshed > 0))
    await refreshFleetMessage(db, slack, log, settings);
  return posted;
}

/** Gives claims back at shutdown, so another process posts them now rather than after the claim timeout. */
export async function releaseClaims(db: Db, held: Map<number, string>): Promise<void> {
  for (const [id, token] of held) await releaseClaim(db, id, token);
}

/** Posts one claimed message, renewing its claim meanwhile; releases it for a retry when it fails. */
async function postClaimed(
  db: Db,
  slack: SlackPoster,
  log: Logger,
  message: ClaimedMessage,
  now: () => Date,
  settings: OutboxOptions,
): Promise<boolean> {
  const incident = await getIncident(db, message.incidentId);
  if (!incident) return false;
  // A renewal that finds the claim gone (taken over after the database was out of reach for
  // claimTimeoutMs) says so: the message may then be posted twice.
  const stopRenewing = keepClaim(settings.claimRenewMs, () => renewClaim(db, message.id, message.claimedBy), {
    lost: () => log.error({ message: message.id }, 'lost the claim on a Slack message while posting it'),
    failed: (error) =>
      log.warn({ err: error, message: message.id }, 'could not renew the claim on a Slack message'),
  });
  const failure = await post(db, slack, message, incident, now()).then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  stopRenewing();
  if (failure) {
    await release(db, log, message, failure.error, settings);
    return false;
  }
  // The root shows the latest state (disk usage, alerts resolved): refresh it in place. The reply
  // is posted whatever happens here; a root left stale is refreshed by the next change.
  if (message.role === 'reply' && message.body.type === 'alert') {
    await refreshRoot(db, slack, incident.id, now()).catch((error: unknown) => {
      log.warn({ err: error, incident: incident.id }, 'could not refresh the root message');
    });
  }
  return true;
}

/**
 * Releases a message whose post failed: it waits `retryDelayMs` before its next attempt, or,
 * after its last attempt, is marked dead.
 */
async function release(db: Db, log: Logger, message: ClaimedMessage, error: unknown, options: OutboxOptions) {
  const attempts = message.attempts + 1;
  const reason = error instanceof Error ? error.message : String(error);
  const context = { err: error, message: message.id, incident: message.incidentId, attempts };
  if (attempts >= options.maxAttempts) {
    log.error(context, 'could not post to Slack; gave up on the message (dead)');
    await markDead(db, message.id, reason);
    return;
  }
  const delay = retryDelayMs(attempts, options);
  log.warn({ ...context, retryInMs: delay }, 'could not post to Slack; will retry');
  await releaseForRetry(db, message.id, reason, delay);
}

/** Posts one claimed message and records it as posted; throws when Slack refused it. */
async function post(db: Db, slack: SlackPoster, message: ClaimedMessage, incident: Incident, now: Date) {
  if (message.role === 'root') return postRoot(db, slack, message, incident, now);
  if (message.body.type === 'file') return postFile(db, slack, message, message.body, incident);
  const reply = replyMessage(message.body);
  const channel = incident.channel ?? message.channel;
  const threadTs = incident.rootTs!;
  const tag = outboxTag(message.dedupKey);
  const found = message.attempts > 0 ? await findTagged(slack, { channel, threadTs }, tag) : undefined;
  const result = found
    ? { ts: found }
    : await slack.postMessage({
        channel,
        thread_ts: threadTs,
        text: reply.text,
        blocks: reply.blocks,
        metadata: tag,
      });
  // The channel it went to, the incident's, not the fallback it was queued with before the root
  // was posted: edits (chat.update) are sent there.
  await recordReplyPosted(db, message.id, { ts: result.ts, channel });
}

/** What a reply shows: an alert's state, or the text queued. */
function replyMessage(
  body: Exclude<OutboxBody, FileBody>,
): SlackMessage | { text: string; blocks: unknown[] } {
  if (body.type === 'alert')
    return alertReply({ status: body.status, name: body.name, summary: body.summary });
  if (body.type === 'text') return { text: body.text, blocks: body.blocks };
  return { text: '', blocks: [] };
}

/** Posts an incident's root, rendered as the incident is now, and records where it went. */
async function postRoot(db: Db, slack: SlackPoster, message: ClaimedMessage, incident: Incident, now: Date) {
  const root = await renderRoot(db, incident, now);
  const tag = outboxTag(message.dedupKey);
  // A root posted before whose answer was lost (looked for only on a retry): taken as it is,
  // its hash left unset so the next refresh brings it up to date.
  const found = message.attempts > 0 ? await findTagged(slack, { channel: message.channel }, tag) : undefined;
  const result = found
    ? { channel: message.channel, ts: found }
    : await slack.postMessage({
        channel: message.channel,
        text: root.text,
        blocks: root.blocks,
        metadata: tag,
      });
  await recordRootPosted(db, {
    messageId: message.id,
    incidentId: incident.id,
    channel: result.channel ?? message.channel,
    ts: result.ts,
    hash: found ? null : rootHash(root),
  });
}

/**
 * Posts a file exactly once. A file cannot carry message metadata, but it has an id before Slack
 * shows it: it is uploaded first (Slack shows it nowhere), its id recorded in the message's body
 * (uploadedFileId), and only then shared in the thread. A retry after a share whose answer was
 * lost (a timeout, a cut connection) finds the share by that id in the thread and records it as
 * posted; otherwise it shares the file it already uploaded, or uploads again when Slack no longer
 * has it (an upload not shared expires).
 */
async function postFile(
  db: Db,
  slack: SlackPoster,
  message: ClaimedMessage,
  file: FileBody,
  incident: Incident,
) {
  const channel = incident.channel ?? message.channel;
  const threadTs = incident.rootTs!;
  let fileId = file.uploadedFileId;
  if (
    fileId !== undefined &&
    message.attempts > 0 &&
    (await findSharedFile(slack, { channel, threadTs }, fileId))
  )
    return recordFilePosted(db, message.id);
  if (fileId === undefined) {
    fileId = (await slack.uploadFile({ content: file.content, filename: file.filename })).fileId;
    await recordUpload(db, message.id, fileId);
  }
  try {
    await slack.shareFile({
      fileId,
      channel_id: channel,
      thread_ts: threadTs,
      title: file.title,
      initial_comment: file.comment,
    });
  } catch (error) {
    // Slack no longer has the upload (never shared, it expired): the next attempt uploads again.
    if ((error as { data?: { error?: string } }).data?.error === 'file_not_found')
      await forgetUpload(db, message.id, fileId);
    throw error;
  }
  await recordFilePosted(db, message.id);
}
