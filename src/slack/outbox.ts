import { parseUsedPercent } from '../alerts/alert.ts';
import { getIncident, type Incident } from '../incidents/incidents.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import {
  type AlertNotice,
  alertReply,
  type DiskUsage,
  incidentRoot,
  type SlackMessage,
} from './blocks/incident.ts';

/**
 * Posts what the intake and the commands queued in thread_messages: the root of each incident,
 * then its replies in the thread, in order. Each message is claimed first (SKIP LOCKED), so any
 * number of bot processes can drain the outbox without posting a message twice; a claim older
 * than a minute is a crashed poster's and is taken over. Slack's 429s are waited out by the Web
 * API client (it honours Retry-After); other failures are kept on the row and retried later.
 */

export interface SlackPoster {
  postMessage(args: {
    channel: string;
    text: string;
    blocks: unknown[];
    thread_ts?: string;
  }): Promise<{ channel?: string; ts?: string }>;
  update(args: { channel: string; ts: string; text: string; blocks: unknown[] }): Promise<unknown>;
  /** Long text (a summary, a script's output) goes to the thread as a file, not a wall of text. */
  uploadFile(args: {
    channel_id: string;
    thread_ts: string;
    content: string;
    filename: string;
    title: string;
    initial_comment: string;
  }): Promise<unknown>;
}

interface OutboxRow {
  id: string;
  incident_id: string;
  role: 'root' | 'reply';
  channel: string;
  body: { type: string } & Partial<AlertNotice>;
  attempts: number;
}

export async function diskUsage(db: Db, incidentId: number): Promise<DiskUsage[]> {
  const { rows } = await db.executeSql<{ payload: unknown; fingerprint: string }>(
    `SELECT DISTINCT ON (fingerprint) payload, fingerprint FROM alerts
     WHERE incident_id = $1 AND valid AND status = 'firing' ORDER BY fingerprint, received_at DESC`,
    [incidentId],
  );
  const usages = new Map<string, DiskUsage>();
  for (const row of rows) {
    const payload = (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as {
      alerts?: Array<{
        fingerprint?: string;
        labels?: Record<string, string>;
        annotations?: Record<string, string>;
      }>;
      disk?: { mount?: string; usedPercent?: number };
    };
    const alert = payload.alerts?.find((a) => a.fingerprint === row.fingerprint);
    const mount = alert?.labels?.mountpoint ?? payload.disk?.mount;
    if (!mount) continue;
    const used =
      payload.disk?.usedPercent ??
      parseUsedPercent(alert?.annotations?.description ?? alert?.annotations?.summary ?? '');
    usages.set(mount, { mount, usedPercent: used });
  }
  return [...usages.values()].sort((a, b) => a.mount.localeCompare(b.mount));
}

export async function renderRoot(db: Db, incident: Incident, now: Date): Promise<SlackMessage> {
  return incidentRoot(incident, await diskUsage(db, incident.id), now);
}

/** Claims the next message that can be posted now (a reply waits for its root). */
async function claim(db: Db): Promise<OutboxRow | undefined> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.executeSql<OutboxRow>(
      `SELECT m.id, m.incident_id, m.role, m.channel, m.body, m.attempts FROM thread_messages m
       JOIN incidents i ON i.id = m.incident_id
       WHERE m.posted_at IS NULL
         AND (m.claimed_at IS NULL OR m.claimed_at < now() - interval '1 minute')
         AND (m.role = 'root' OR i.root_ts IS NOT NULL)
         AND m.attempts < 10
       ORDER BY m.id LIMIT 1 FOR UPDATE OF m SKIP LOCKED`,
    );
    const row = rows[0];
    if (!row) return undefined;
    await tx.executeSql(
      'UPDATE thread_messages SET claimed_at = now(), attempts = attempts + 1 WHERE id = $1',
      [row.id],
    );
    return row;
  });
}

/** Posts everything postable; returns how many messages were posted. */
export async function drainOutbox(
  db: Db,
  slack: SlackPoster,
  log: Logger,
  now: () => Date = () => new Date(),
): Promise<number> {
  let posted = 0;
  for (;;) {
    const row = await claim(db);
    if (!row) return posted;
    const body = typeof row.body === 'string' ? (JSON.parse(row.body) as OutboxRow['body']) : row.body;
    const incident = await getIncident(db, Number(row.incident_id));
    if (!incident) continue;
    try {
      if (row.role === 'root') {
        const message = await renderRoot(db, incident, now());
        const result = await slack.postMessage({
          channel: row.channel,
          text: message.text,
          blocks: message.blocks,
        });
        await db.transaction(async (tx) => {
          await tx.executeSql(
            'UPDATE thread_messages SET ts = $2, posted_at = now(), last_error = NULL WHERE id = $1',
            [row.id, result.ts],
          );
          await tx.executeSql('UPDATE incidents SET channel = $2, root_ts = $3 WHERE id = $1', [
            incident.id,
            result.channel ?? row.channel,
            result.ts,
          ]);
        });
      } else {
        if (body.type === 'file') {
          const file = body as unknown as {
            content: string;
            filename: string;
            title: string;
            comment: string;
          };
          await slack.uploadFile({
            channel_id: incident.channel ?? row.channel,
            thread_ts: incident.rootTs!,
            content: file.content,
            filename: file.filename,
            title: file.title,
            initial_comment: file.comment,
          });
          await db.executeSql(
            'UPDATE thread_messages SET posted_at = now(), last_error = NULL WHERE id = $1',
            [row.id],
          );
          posted++;
          continue;
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
        const result = await slack.postMessage({
          channel: incident.channel ?? row.channel,
          thread_ts: incident.rootTs!,
          text: message.text,
          blocks: message.blocks,
        });
        await db.executeSql(
          'UPDATE thread_messages SET ts = $2, posted_at = now(), last_error = NULL WHERE id = $1',
          [row.id, result.ts],
        );
        // The root shows the latest state (disk usage, alerts resolved): refresh it in place.
        if (body.type === 'alert') await refreshRoot(db, slack, incident.id, now());
      }
      posted++;
    } catch (error) {
      log.warn(
        { err: error, message: Number(row.id), incident: incident.id },
        'could not post to Slack; will retry',
      );
      await db.executeSql('UPDATE thread_messages SET claimed_at = NULL, last_error = $2 WHERE id = $1', [
        row.id,
        (error as Error).message,
      ]);
      return posted;
    }
  }
}

/** Re-renders an incident's root message in place (status, commander, disk usage changed). */
export async function refreshRoot(db: Db, slack: SlackPoster, incidentId: number, now: Date): Promise<void> {
  const incident = await getIncident(db, incidentId);
  if (!incident?.rootTs || !incident.channel) return;
  const message = await renderRoot(db, incident, now);
  await slack.update({
    channel: incident.channel,
    ts: incident.rootTs,
    text: message.text,
    blocks: message.blocks,
  });
}
