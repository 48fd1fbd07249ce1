import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { parseUsedPercent } from '../alerts/alert.ts';
import { alertLinks, type StoredAlertLinks } from '../alerts/links.ts';
import { getIncident, type Incident } from '../incidents/incidents.ts';
import { fleetOverview } from '../incidents/signature.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { latestDiskChange } from '../store/records.ts';
import { fleetMessage } from './blocks/fleet.ts';
import {
  type AlertCounts,
  type AlertNotice,
  alertReply,
  type DiskUsage,
  incidentRoot,
  type RootExtras,
  type SlackMessage,
} from './blocks/incident.ts';
import { analysisView, fleetIncidents, relatedView } from './fleet.ts';

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

export interface OutboxOptions {
  /** Attempts before a message is marked dead. Default 10 (about half an hour of failures). */
  maxAttempts: number;
  /** Delay before the first retry, in milliseconds; it doubles with each attempt. Default 5000. */
  retryBaseMs: number;
  /** Longest delay between two attempts, in milliseconds. Default 600000 (10 minutes). */
  retryMaxMs: number;
  /**
   * How long a claim holds after its last renewal before another poster may take the message, in
   * milliseconds. Default 120000 (2 minutes): six renewals missed.
   */
  claimTimeoutMs: number;
  /** How often a poster renews its claim while the post is in flight, in milliseconds. Default 20000. */
  claimRenewMs: number;
  /**
   * Messages posted at once, each of a different thread (a thread's own stay in order), so a slow
   * or failing thread does not hold up the others. Default 4; Slack's 429s pause them all.
   */
  concurrency: number;
}

/** The defaults; not read from the environment (tests pass their own). */
export const OUTBOX_DEFAULTS: OutboxOptions = {
  maxAttempts: 10,
  retryBaseMs: 5000,
  retryMaxMs: 600_000,
  claimTimeoutMs: 120_000,
  claimRenewMs: 20_000,
  concurrency: 4,
};

/** How a process stops draining: no new claims once `stopping()`, and the claims it holds in `held`. */
export interface DrainControl {
  stopping?: () => boolean;
  /** Message id → claim token of the posts in flight, so a shutdown can release them. */
  held?: Map<string, string>;
}

/** How long a message waits after its `attempts`-th failed attempt (1, 2, ...): doubling, capped. */
export function retryDelayMs(
  attempts: number,
  options: Pick<OutboxOptions, 'retryBaseMs' | 'retryMaxMs'>,
): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30);
  return Math.min(options.retryBaseMs * 2 ** exponent, options.retryMaxMs);
}

/** What a posted message carries so it can be found again: Slack's message metadata. */
export interface OutboxTag {
  event_type: typeof OUTBOX_EVENT_TYPE;
  event_payload: { key: string };
}

export const OUTBOX_EVENT_TYPE = 'nightshift_outbox';

/** A message as conversations.history/replies return it, with its metadata. */
export interface TaggedMessage {
  ts: string;
  metadata?: { event_type?: string; event_payload?: Record<string, unknown> };
  /** The ids of the files the message shares (a file shared in a thread is such a message). */
  files?: string[];
}

export interface SlackPoster {
  postMessage(args: {
    channel: string;
    text: string;
    blocks: unknown[];
    thread_ts?: string;
    metadata?: OutboxTag;
  }): Promise<{ channel?: string; ts?: string }>;
  /**
   * Recent messages with their metadata: a thread's (threadTs) or the channel's latest (up to 1,000).
   * Without it, a post whose answer was lost may be posted again.
   */
  history?(args: { channel: string; threadTs?: string }): Promise<TaggedMessage[]>;
  update(args: { channel: string; ts: string; text: string; blocks: unknown[] }): Promise<unknown>;
  /**
   * Long text (a summary, a script's output) goes to the thread as a file, not a wall of text, in
   * two steps. First the file is uploaded (files.getUploadURLExternal, then its bytes), which
   * Slack shows nowhere; its id comes back.
   */
  uploadFile(args: { content: string; filename: string }): Promise<{ fileId: string }>;
  /**
   * Then it is shared in the thread (files.completeUploadExternal), the one step Slack shows: a
   * share whose answer was lost is found by the file's id in the thread's history.
   */
  shareFile(args: {
    fileId: string;
    channel_id: string;
    thread_ts: string;
    title: string;
    initial_comment: string;
  }): Promise<unknown>;
}

interface OutboxRow {
  id: string;
  incident_id: string;
  dedup_key: string;
  role: 'root' | 'reply';
  channel: string;
  body: { type: string } & Partial<AlertNotice>;
  attempts: number;
  /** Names this claim: only its holder renews it. */
  claimed_by: string;
}

/** What alertState reads of an alert as stored (alerts.payload). */
interface StoredAlert {
  fingerprint?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  disk?: { mount?: string; usedPercent?: number };
}

/**
 * What the root shows of an incident's alerts: the latest delivery of each alert (fingerprint),
 * firing or resolved, so a resolution shows on the root; the disks they name, a mount firing in
 * one alert and resolved in another counting as firing; and how many alerts are in each state.
 */
export async function alertState(
  db: Db,
  incidentId: number,
): Promise<{ disks: DiskUsage[]; alerts: AlertCounts }> {
  const { rows } = await db.executeSql<{
    payload: unknown;
    fingerprint: string;
    status: 'firing' | 'resolved';
  }>(
    `SELECT DISTINCT ON (fingerprint) payload, fingerprint, status FROM alerts
     WHERE incident_id = $1 AND valid ORDER BY fingerprint, received_at DESC, id DESC`,
    [incidentId],
  );
  const alerts: AlertCounts = { firing: 0, resolved: 0 };
  const usages = new Map<string, DiskUsage>();
  for (const row of rows) {
    alerts[row.status]++;
    const payload = (
      typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload
    ) as StoredAlert & {
      alerts?: StoredAlert[];
    };
    // Rows stored before migration 9 hold their whole delivery; later rows the alert alone.
    const alert = payload.alerts ? payload.alerts.find((a) => a.fingerprint === row.fingerprint) : payload;
    const mount = alert?.labels?.mountpoint ?? payload.disk?.mount;
    if (!mount) continue;
    const used =
      payload.disk?.usedPercent ??
      parseUsedPercent(alert?.annotations?.description ?? alert?.annotations?.summary ?? '');
    const usage: DiskUsage = { mount, usedPercent: used, status: row.status };
    const known = usages.get(mount);
    if (!known || (known.status === 'resolved' && row.status === 'firing')) usages.set(mount, usage);
    else if (known.status === row.status && (known.usedPercent ?? -1) < (used ?? -1))
      usages.set(mount, usage);
  }
  return { disks: [...usages.values()].sort((a, b) => a.mount.localeCompare(b.mount)), alerts };
}

/**
 * What the root shows beyond the incident and its alerts: the links back to its first alert, and
 * the analysis's top finding once there is one.
 */
export async function rootExtras(db: Db, incidentId: number): Promise<RootExtras> {
  const first = await db.executeSql<{ payload: unknown }>(
    'SELECT payload FROM alerts WHERE incident_id = $1 AND valid ORDER BY id LIMIT 1',
    [incidentId],
  );
  const raw = first.rows[0]?.payload;
  const payload = (typeof raw === 'string' ? JSON.parse(raw) : raw) as
    | (StoredAlertLinks & { alerts?: StoredAlertLinks[] })
    | undefined;
  // Rows stored before migration 9 hold their whole delivery.
  const alert = payload?.alerts ? { ...payload.alerts[0], externalURL: payload.externalURL } : payload;
  const { headline, signature } = await analysisView(db, incidentId);
  // Only an analysed crash has relatives: without one, the fleet is not read.
  const { related, past } = signature ? await relatedView(db, incidentId) : { related: { sameCrash: [] } };
  const change = await latestDiskChange(db, incidentId);
  return {
    ...(alert ? { links: alertLinks(alert) } : {}),
    ...(headline ? { headline } : {}),
    ...(change ? { freed: { bytes: change.freedBytes, lines: change.lines } } : {}),
    ...(related.sameCrash.length > 0 ? { sameCrash: related.sameCrash } : {}),
    ...(past ? { recurrenceOf: past } : {}),
  };
}

export async function renderRoot(db: Db, incident: Incident, now: Date): Promise<SlackMessage> {
  const { disks, alerts } = await alertState(db, incident.id);
  return incidentRoot(incident, disks, now, alerts, await rootExtras(db, incident.id));
}

/** Roots marked stale (root_hash cleared: an analysis found their headline) are updated in place. */
async function refreshStaleRoots(db: Db, slack: SlackPoster, log: Logger, now: Date): Promise<number> {
  const { rows } = await db.executeSql<{ id: string }>(
    'SELECT id FROM incidents WHERE root_ts IS NOT NULL AND root_hash IS NULL ORDER BY id LIMIT 20',
  );
  for (const row of rows)
    await refreshRoot(db, slack, Number(row.id), now).catch((error: unknown) =>
      log.warn({ err: error, incident: Number(row.id) }, 'could not refresh the root message'),
    );
  return rows.length;
}

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
  const known = await db.executeSql<{ ts: string | null; hash: string | null }>(
    'SELECT ts, hash FROM channel_messages WHERE key = $1',
    [FLEET_MESSAGE_KEY],
  );
  const row = known.rows[0];
  if (row?.hash === hash) return;
  if (!row?.ts && overview.hosts.length < 2) return;
  if (!row) {
    const { rows } = await db.executeSql<{ channel: string }>(
      'SELECT channel FROM incidents WHERE channel IS NOT NULL AND root_ts IS NOT NULL ORDER BY id DESC LIMIT 1',
    );
    if (!rows[0]) return;
    await db.executeSql(
      'INSERT INTO channel_messages (key, channel) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
      [FLEET_MESSAGE_KEY, rows[0].channel],
    );
  }
  const token = randomUUID();
  const claimed = await db.executeSql<{ channel: string; ts: string | null }>(
    `UPDATE channel_messages SET claimed_by = $2, claimed_at = now()
     WHERE key = $1 AND (claimed_by IS NULL OR claimed_at < now() - $3::float8 * interval '1 millisecond')
     RETURNING channel, ts`,
    [FLEET_MESSAGE_KEY, token, options.claimTimeoutMs],
  );
  const held = claimed.rows[0];
  // Another sender holds it: it renders the fleet as it is when its call is done, or the next drain does.
  if (!held) return;
  try {
    let ts = held.ts;
    const tag: OutboxTag = {
      event_type: OUTBOX_EVENT_TYPE,
      event_payload: { key: `channel:${FLEET_MESSAGE_KEY}` },
    };
    if (!ts) ts = (await findTagged(slack, { channel: held.channel }, tag)) ?? null;
    if (ts) await slack.update({ channel: held.channel, ts, text: message.text, blocks: message.blocks });
    else
      ts =
        (
          await slack.postMessage({
            channel: held.channel,
            text: message.text,
            blocks: message.blocks,
            metadata: tag,
          })
        ).ts ?? null;
    await db.executeSql(
      `UPDATE channel_messages SET ts = $3, hash = $4, claimed_by = NULL, claimed_at = NULL, last_error = NULL,
         updated_at = now() WHERE key = $1 AND claimed_by = $2`,
      [FLEET_MESSAGE_KEY, token, ts, hash],
    );
  } catch (error) {
    log.warn({ err: error }, 'could not post or edit the fleet message; the next drain tries again');
    await db.executeSql(
      'UPDATE channel_messages SET claimed_by = NULL, claimed_at = NULL, last_error = $3 WHERE key = $1 AND claimed_by = $2',
      [FLEET_MESSAGE_KEY, token, error instanceof Error ? error.message : String(error)],
    );
  }
}

/**
 * Claims the next message that can be posted now: not posted, not dead, not waiting out a retry
 * delay, not held by a live claim; a reply only once its root is posted and no earlier reply of
 * its incident is still to be posted (a claimed one in flight, or one waiting for its retry).
 */
async function claim(db: Db, options: OutboxOptions): Promise<OutboxRow | undefined> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.executeSql<Omit<OutboxRow, 'claimed_by'>>(
      `SELECT m.id, m.incident_id, m.dedup_key,
              m.role, m.channel, m.body, m.attempts FROM thread_messages m
       JOIN incidents i ON i.id = m.incident_id
       WHERE m.posted_at IS NULL AND m.dead_at IS NULL
         AND (m.not_before IS NULL OR m.not_before <= now())
         AND (m.claimed_at IS NULL OR m.claimed_at < now() - $1::float8 * interval '1 millisecond')
         AND (m.role = 'root' OR (i.root_ts IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM thread_messages e
           WHERE e.incident_id = m.incident_id AND e.role = 'reply' AND e.id < m.id
             AND e.posted_at IS NULL AND e.dead_at IS NULL)))
       ORDER BY m.id LIMIT 1 FOR UPDATE OF m SKIP LOCKED`,
      [options.claimTimeoutMs],
    );
    const row = rows[0];
    if (!row) return undefined;
    const token = randomUUID();
    // The body read here is what Slack gets (edited_version): an edit made while it is being
    // posted is sent after the post, by the drain's pass over edits (sendPendingEdits).
    await tx.executeSql(
      `UPDATE thread_messages SET claimed_at = now(), claimed_by = $2, attempts = attempts + 1,
         edited_version = version WHERE id = $1`,
      [row.id, token],
    );
    return { ...row, claimed_by: token };
  });
}

/** Posts one claimed message and records it as posted; throws when Slack refused it. */
async function post(
  db: Db,
  slack: SlackPoster,
  row: OutboxRow,
  incident: Incident,
  now: Date,
): Promise<void> {
  const body = typeof row.body === 'string' ? (JSON.parse(row.body) as OutboxRow['body']) : row.body;
  const tag: OutboxTag = { event_type: OUTBOX_EVENT_TYPE, event_payload: { key: row.dedup_key } };
  if (row.role === 'root') {
    const message = await renderRoot(db, incident, now);
    // A root posted before whose answer was lost (looked for only on a retry): taken as it is,
    // its hash left unset so the next refresh brings it up to date.
    const found = row.attempts > 0 ? await findTagged(slack, { channel: row.channel }, tag) : undefined;
    const result = found
      ? { channel: row.channel, ts: found }
      : await slack.postMessage({
          channel: row.channel,
          text: message.text,
          blocks: message.blocks,
          metadata: tag,
        });
    await db.transaction(async (tx) => {
      await tx.executeSql(
        'UPDATE thread_messages SET ts = $2, posted_at = now(), last_error = NULL WHERE id = $1',
        [row.id, result.ts],
      );
      await tx.executeSql('UPDATE incidents SET channel = $2, root_ts = $3, root_hash = $4 WHERE id = $1', [
        incident.id,
        result.channel ?? row.channel,
        result.ts,
        found ? null : rootHash(message),
      ]);
    });
    return;
  }
  if (body.type === 'file') {
    await postFile(db, slack, row, body as unknown as FileBody, incident);
    return;
  }
  const message =
    body.type === 'alert'
      ? alertReply({
          status: body.status ?? 'firing',
          name: body.name ?? 'alert',
          summary: body.summary ?? '',
        })
      : {
          text: String((body as { text?: string }).text ?? ''),
          blocks: (body as { blocks?: unknown[] }).blocks ?? [],
        };
  const channel = incident.channel ?? row.channel;
  const found =
    row.attempts > 0 ? await findTagged(slack, { channel, threadTs: incident.rootTs! }, tag) : undefined;
  const result = found
    ? { ts: found }
    : await slack.postMessage({
        channel,
        thread_ts: incident.rootTs!,
        text: message.text,
        blocks: message.blocks,
        metadata: tag,
      });
  // The channel it went to, the incident's, not the fallback it was queued with before the root
  // was posted: edits (chat.update) are sent there.
  await db.executeSql(
    'UPDATE thread_messages SET ts = $2, channel = $3, posted_at = now(), last_error = NULL WHERE id = $1',
    [row.id, result.ts, channel],
  );
}

interface FileBody {
  content: string;
  filename: string;
  title: string;
  comment: string;
  /** The id Slack gave the upload, kept in the body from before the share is asked for. */
  uploadedFileId?: string;
}

/**
 * Posts a file exactly once. A file cannot carry message metadata, but it has an id before Slack
 * shows it: it is uploaded first (Slack shows it nowhere), its id recorded in the message's body
 * (uploadedFileId), and only then shared in the thread. A retry after a share whose answer was lost (a timeout, a cut connection) finds the
 * share by that id in the thread and records it as posted; otherwise it shares the file it already
 * uploaded, or uploads again when Slack no longer has it (an upload not shared expires).
 */
async function postFile(db: Db, slack: SlackPoster, row: OutboxRow, file: FileBody, incident: Incident) {
  const channel = incident.channel ?? row.channel;
  const threadTs = incident.rootTs!;
  const posted = () =>
    db.executeSql('UPDATE thread_messages SET posted_at = now(), last_error = NULL WHERE id = $1', [row.id]);
  let fileId = file.uploadedFileId;
  if (
    fileId !== undefined &&
    row.attempts > 0 &&
    (await findSharedFile(slack, { channel, threadTs }, fileId))
  )
    return posted();
  if (fileId === undefined) {
    fileId = (await slack.uploadFile({ content: file.content, filename: file.filename })).fileId;
    await db.executeSql(
      `UPDATE thread_messages SET body = body || jsonb_build_object('uploadedFileId', $2::text) WHERE id = $1`,
      [row.id, fileId],
    );
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
      await db.executeSql(
        `UPDATE thread_messages SET body = body - 'uploadedFileId' WHERE id = $1 AND body->>'uploadedFileId' = $2`,
        [row.id, fileId],
      );
    throw error;
  }
  await posted();
}

/** Whether a message of the thread shares the file: a share whose answer was lost, for a retry. */
async function findSharedFile(
  slack: SlackPoster,
  where: { channel: string; threadTs: string },
  fileId: string,
): Promise<boolean> {
  if (!slack.history) return false;
  try {
    return (await slack.history(where)).some((m) => m.files?.includes(fileId));
  } catch (error) {
    if ((error as { code?: string }).code === 'slack_webapi_platform_error') return false;
    throw error;
  }
}

/**
 * The ts of a message already posted with this tag, for a retry: the attempt before may have been
 * carried out by Slack with its answer lost (a timeout, a cut connection, a 5xx after the fact).
 * A lookup Slack itself refuses (`ok: false`, say a channel given by name) cannot tell, and the
 * message is posted; a lookup that cannot reach Slack fails the attempt, to be tried again.
 */
async function findTagged(
  slack: SlackPoster,
  where: { channel: string; threadTs?: string },
  tag: OutboxTag,
): Promise<string | undefined> {
  if (!slack.history) return undefined;
  let messages: TaggedMessage[];
  try {
    messages = await slack.history(where);
  } catch (error) {
    if ((error as { code?: string }).code === 'slack_webapi_platform_error') return undefined;
    throw error;
  }
  return messages.find(
    (m) =>
      m.metadata?.event_type === tag.event_type && m.metadata.event_payload?.key === tag.event_payload.key,
  )?.ts;
}

/**
 * Renews a claim every `everyMs` until the returned function is called. A renewal that finds the
 * claim gone (taken over after the database was out of reach for claimTimeoutMs) says so: the
 * message may then be posted twice.
 */
function holdClaim(db: Db, log: Logger, row: OutboxRow, everyMs: number): () => void {
  let held = true;
  const timer = setInterval(() => {
    db.executeSql<{ id: string }>(
      `UPDATE thread_messages SET claimed_at = now()
       WHERE id = $1 AND claimed_by = $2 AND posted_at IS NULL RETURNING id`,
      [row.id, row.claimed_by],
    ).then(
      ({ rows }) => {
        if (held && rows.length === 0)
          log.error({ message: Number(row.id) }, 'lost the claim on a Slack message while posting it');
      },
      (error: unknown) => {
        if (held)
          log.warn({ err: error, message: Number(row.id) }, 'could not renew the claim on a Slack message');
      },
    );
  }, everyMs);
  timer.unref();
  return () => {
    held = false;
    clearInterval(timer);
  };
}

/**
 * Releases a message whose post failed: it waits `retryDelayMs` before its next attempt, or,
 * after its last attempt, is marked dead.
 */
async function release(db: Db, log: Logger, row: OutboxRow, error: unknown, options: OutboxOptions) {
  const attempts = row.attempts + 1;
  const reason = error instanceof Error ? error.message : String(error);
  const context = { err: error, message: Number(row.id), incident: Number(row.incident_id), attempts };
  if (attempts >= options.maxAttempts) {
    log.error(context, 'could not post to Slack; gave up on the message (dead)');
    await db.executeSql(
      `UPDATE thread_messages SET claimed_at = NULL, claimed_by = NULL, last_error = $2, dead_at = now()
       WHERE id = $1`,
      [row.id, reason],
    );
    return;
  }
  const delay = retryDelayMs(attempts, options);
  log.warn({ ...context, retryInMs: delay }, 'could not post to Slack; will retry');
  await db.executeSql(
    `UPDATE thread_messages SET claimed_at = NULL, claimed_by = NULL, last_error = $2,
       not_before = now() + $3::float8 * interval '1 millisecond' WHERE id = $1`,
    [row.id, reason, delay],
  );
}

/**
 * Posts everything postable, `concurrency` messages at a time (each from a different thread, as
 * claim() only offers a thread's next message once the one before it is posted); returns how
 * many messages were posted.
 */
export async function drainOutbox(
  db: Db,
  slack: SlackPoster,
  log: Logger,
  now: () => Date = () => new Date(),
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
      const row = await claim(db, settings);
      if (!row) return;
      control.held?.set(row.id, row.claimed_by);
      try {
        if (await postClaimed(db, slack, log, row, now, settings)) posted++;
      } finally {
        control.held?.delete(row.id);
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

/** Posts one claimed message, renewing its claim meanwhile; releases it for a retry when it fails. */
async function postClaimed(
  db: Db,
  slack: SlackPoster,
  log: Logger,
  row: OutboxRow,
  now: () => Date,
  settings: OutboxOptions,
): Promise<boolean> {
  const incident = await getIncident(db, Number(row.incident_id));
  if (!incident) return false;
  const stopRenewing = holdClaim(db, log, row, settings.claimRenewMs);
  const failure = await post(db, slack, row, incident, now()).then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  stopRenewing();
  if (failure) {
    await release(db, log, row, failure.error, settings);
    return false;
  }
  const body = typeof row.body === 'string' ? (JSON.parse(row.body) as OutboxRow['body']) : row.body;
  // The root shows the latest state (disk usage, alerts resolved): refresh it in place. The reply
  // is posted whatever happens here; a root left stale is refreshed by the next change.
  if (row.role === 'reply' && body.type === 'alert') {
    await refreshRoot(db, slack, incident.id, now()).catch((error: unknown) => {
      log.warn({ err: error, incident: incident.id }, 'could not refresh the root message');
    });
  }
  return true;
}

/** Gives claims back at shutdown, so another process posts them now rather than after the claim timeout. */
export async function releaseClaims(db: Db, held: Map<string, string>): Promise<void> {
  for (const [id, token] of held)
    await db.executeSql(
      'UPDATE thread_messages SET claimed_at = NULL, claimed_by = NULL WHERE id = $1 AND claimed_by = $2 AND posted_at IS NULL',
      [id, token],
    );
}

/**
 * The outbox's backlog in one read, for the pump's warning, /metrics and doctor: messages still to
 * post (waiting for a retry included), those given up on, how long the oldest still to post has
 * waited (0 when none) and the first last_error among them.
 */
export async function outboxBacklog(
  db: Db,
): Promise<{ pending: number; dead: number; oldestSeconds: number; lastError: string | null }> {
  const { rows } = await db.executeSql<{
    pending: number;
    dead: number;
    oldest: number | null;
    error: string | null;
  }>(
    `SELECT count(*) FILTER (WHERE dead_at IS NULL)::int AS pending,
            count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead,
            extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL))::float8 AS oldest,
            (array_agg(last_error ORDER BY id) FILTER (WHERE dead_at IS NULL AND last_error IS NOT NULL))[1] AS error
       FROM thread_messages WHERE posted_at IS NULL`,
  );
  const row = rows[0];
  return {
    pending: row?.pending ?? 0,
    dead: row?.dead ?? 0,
    oldestSeconds: Number(row?.oldest ?? 0),
    lastError: row?.error ?? null,
  };
}

/** A pending message older than this makes the outbox "stuck" in the log, /metrics and doctor. */
export const OUTBOX_STUCK_AFTER_S = 60;

/** Identifies a rendering of the root: equal hashes, nothing for chat.update to change. */
export function rootHash(message: SlackMessage): string {
  return createHash('sha256')
    .update(JSON.stringify({ text: message.text, blocks: message.blocks }))
    .digest('hex');
}

/**
 * Re-renders an incident's root message in place (status, commander, alerts changed), unless it
 * renders as it was last posted or updated (incidents.root_hash): a burst of alerts that change
 * nothing on the root costs one reply each and no chat.update. The hash is stored only once Slack
 * took the update, so a failed one is made by the next refresh.
 */
export async function refreshRoot(db: Db, slack: SlackPoster, incidentId: number, now: Date): Promise<void> {
  const incident = await getIncident(db, incidentId);
  if (!incident?.rootTs || !incident.channel) return;
  const message = await renderRoot(db, incident, now);
  const hash = rootHash(message);
  const { rows } = await db.executeSql<{ root_hash: string | null }>(
    'SELECT root_hash FROM incidents WHERE id = $1',
    [incident.id],
  );
  if (rows[0]?.root_hash === hash) return;
  await slack.update({
    channel: incident.channel,
    ts: incident.rootTs,
    text: message.text,
    blocks: message.blocks,
  });
  await db.executeSql('UPDATE incidents SET root_hash = $2 WHERE id = $1', [incident.id, hash]);
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
    const { rows } = await db.executeSql<{
      channel: string;
      ts: string;
      body: unknown;
      version: string;
      edit_attempts: number;
    }>(
      `UPDATE thread_messages SET edit_claimed_by = $2, edit_claimed_at = now()
       WHERE id = $1 AND ts IS NOT NULL AND version > edited_version
         AND (edit_not_before IS NULL OR edit_not_before <= now())
         AND (edit_claimed_by IS NULL OR edit_claimed_at < now() - $3::float8 * interval '1 millisecond')
       RETURNING channel, ts, body, version, edit_attempts`,
      [messageId, token, settings.claimTimeoutMs],
    );
    const row = rows[0];
    if (!row) return;
    const body = (typeof row.body === 'string' ? JSON.parse(row.body) : row.body) as {
      text?: string;
      blocks?: unknown[];
    };
    const stopRenewing = holdEditClaim(db, log, messageId, token, settings.claimRenewMs);
    const failure = await slack
      .update({ channel: row.channel, ts: row.ts, text: String(body.text ?? ''), blocks: body.blocks ?? [] })
      .then(
        () => undefined,
        (error: unknown) => ({ error }),
      );
    stopRenewing();
    if (failure) {
      const attempts = row.edit_attempts + 1;
      const last = attempts >= settings.maxAttempts;
      const context = { err: failure.error, message: messageId, attempts };
      if (last) log.error(context, 'could not edit a Slack message; the next change of it tries again');
      else log.warn(context, 'could not edit a Slack message; will retry');
      await db.executeSql(
        `UPDATE thread_messages SET edit_claimed_by = NULL, edit_claimed_at = NULL, edit_attempts = $3,
           edit_error = $4, edit_not_before = CASE WHEN $5 THEN 'infinity'::timestamptz
             ELSE now() + $6::float8 * interval '1 millisecond' END
         WHERE id = $1 AND edit_claimed_by = $2`,
        [
          messageId,
          token,
          attempts,
          failure.error instanceof Error ? failure.error.message : String(failure.error),
          last,
          retryDelayMs(attempts, settings),
        ],
      );
      return;
    }
    await db.executeSql(
      `UPDATE thread_messages SET edited_version = greatest(edited_version, $3), edit_claimed_by = NULL,
         edit_claimed_at = NULL, edit_attempts = 0, edit_error = NULL
       WHERE id = $1 AND edit_claimed_by = $2`,
      [messageId, token, row.version],
    );
  }
}

/** Renews an edit's claim every `everyMs` until the returned function is called. */
function holdEditClaim(
  db: Db,
  log: Pick<Logger, 'warn'>,
  messageId: number,
  token: string,
  everyMs: number,
): () => void {
  let held = true;
  const timer = setInterval(() => {
    db.executeSql(
      'UPDATE thread_messages SET edit_claimed_at = now() WHERE id = $1 AND edit_claimed_by = $2',
      [messageId, token],
    ).catch((error: unknown) => {
      if (held) log.warn({ err: error, message: messageId }, 'could not renew the claim on a Slack edit');
    });
  }, everyMs);
  timer.unref();
  return () => {
    held = false;
    clearInterval(timer);
  };
}

/** Sends the edits Slack does not have yet: failed ones past their wait, those whose sender died. */
async function sendPendingEdits(db: Db, slack: SlackPoster, log: Logger, options: OutboxOptions) {
  const { rows } = await db.executeSql<{ id: string }>(
    `SELECT id FROM thread_messages
     WHERE ts IS NOT NULL AND version > edited_version
       AND (edit_not_before IS NULL OR edit_not_before <= now())
       AND (edit_claimed_by IS NULL OR edit_claimed_at < now() - $1::float8 * interval '1 millisecond')
     ORDER BY id LIMIT 100`,
    [options.claimTimeoutMs],
  );
  for (const row of rows) await sendEdit(db, slack, Number(row.id), log, options);
}
