import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import {
  type ClaimedEdit,
  claimEdit,
  messagesWithEditsDue,
  recordEditFailed,
  recordEditSent,
  renewEditClaim,
  rewriteMessage,
} from '../store/outbox.ts';
import type { SlackMessage } from './blocks/incident.ts';
import { keepClaim, OUTBOX_DEFAULTS, type OutboxOptions, retryDelayMs } from './outbox-options.ts';
import type { SlackPoster } from './poster.ts';

/**
 * Edits a queued thread message in place (a proposal's state, a transfer's progress): the queued
 * body is rewritten, so a message Slack does not have yet is posted in its latest form, and one
 * Slack has is updated with chat.update (sendEdit: one edit of a message at a time, always its
 * latest body).
 *
 * Edits never step back. Each one has a rank, what it shows in order (a proposal's state, then its
 * decisions; a transfer's count of progress lines), and one ranked below what the message already
 * holds is refused: an edit rendered from an older read (an approval's, while the run had already
 * started) does not replace a newer one, whichever process writes it last. Equal ranks replace
 * each other.
 *
 * Slack failing to take the update (a rate limit, a deleted message) is logged and not thrown:
 * what the message shows must never stop what it shows (a run, an approval); the outbox drain
 * tries again. Returns false when no message has that key.
 */
export async function editThreadMessage(
  db: Db,
  slack: SlackPoster | undefined,
  key: string,
  message: SlackMessage,
  options: {
    log?: Pick<Logger, 'warn' | 'error'> | undefined;
    /** Where this edit stands among the message's edits; default 0 (unranked: each replaces the last). */
    rank?: number;
    /** Outbox timings (claims, retries) other than the defaults (tests). */
    outbox?: Partial<OutboxOptions>;
  } = {},
): Promise<boolean> {
  const body = { type: 'text' as const, text: message.text, blocks: message.blocks };
  const row = await rewriteMessage(db, key, body, options.rank ?? 0);
  if (!row) return false;
  if (slack && row.edited) {
    const log = options.log ?? { warn: () => {}, error: () => {} };
    await sendEdit(db, slack, row.id, log, options.outbox);
  }
  return true;
}

/**
 * Sends the latest body of a posted message to Slack with chat.update, unless Slack has it
 * already, and again while a newer body is written meanwhile. The message is claimed for the edit
 * (edit_claimed_by) and the claim renewed while the call is in flight, as a post's is: only one
 * sender edits a message at a time, and it always sends the newest version there is, so edits
 * reach Slack in the order of their versions and never step back. A sender that finds the claim
 * held returns: the holder sends the newer body when its own call is done. A failed edit waits
 * out `retryDelayMs` (edit_not_before) and the drain sends it again; after `maxAttempts` it waits
 * for the next write of the message. Never throws for Slack's failures (they are logged).
 */
export async function sendEdit(
  db: Db,
  slack: SlackPoster,
  messageId: number,
  log: Pick<Logger, 'warn' | 'error'>,
  options: Partial<OutboxOptions> = {},
): Promise<void> {
  const settings = { ...OUTBOX_DEFAULTS, ...options };
  for (;;) {
    const token = randomUUID();
    const edit = await claimEdit(db, messageId, token, settings.claimTimeoutMs);
    if (!edit) return;
    const stopRenewing = keepClaim(settings.claimRenewMs, () => renewEditClaim(db, messageId, token), {
      failed: (error) =>
        log.warn({ err: error, message: messageId }, 'could not renew the claim on a Slack edit'),
    });
    const failure = await slack.update({ channel: edit.channel, ts: edit.ts, ...editedMessage(edit) }).then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    stopRenewing();
    if (failure) return editFailed(db, log, { messageId, token, edit, error: failure.error }, settings);
    await recordEditSent(db, messageId, token, edit.version);
  }
}

/** What an edit sends: the body's text and blocks (edits rewrite a message as a text one). */
function editedMessage(edit: ClaimedEdit): { text: string; blocks: unknown[] } {
  return edit.body.type === 'text'
    ? { text: edit.body.text, blocks: edit.body.blocks }
    : { text: '', blocks: [] };
}

/** Logs a failed edit and releases it: retried after its delay, or, after the last, left. */
async function editFailed(
  db: Db,
  log: Pick<Logger, 'warn' | 'error'>,
  failed: { messageId: number; token: string; edit: ClaimedEdit; error: unknown },
  settings: OutboxOptions,
): Promise<void> {
  const attempts = failed.edit.attempts + 1;
  const giveUp = attempts >= settings.maxAttempts;
  const context = { err: failed.error, message: failed.messageId, attempts };
  if (giveUp) log.error(context, 'could not edit a Slack message; the next change of it tries again');
  else log.warn(context, 'could not edit a Slack message; will retry');
  await recordEditFailed(db, failed.messageId, failed.token, {
    attempts,
    error: failed.error instanceof Error ? failed.error.message : String(failed.error),
    giveUp,
    delayMs: retryDelayMs(attempts, settings),
  });
}

/** Sends the edits Slack does not have yet: failed ones past their wait, those whose sender died. */
export async function sendPendingEdits(
  db: Db,
  slack: SlackPoster,
  log: Pick<Logger, 'warn' | 'error'>,
  options: OutboxOptions,
): Promise<void> {
  for (const id of await messagesWithEditsDue(db, options.claimTimeoutMs))
    await sendEdit(db, slack, id, log, options);
}
