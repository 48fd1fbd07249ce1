import { createHash } from 'node:crypto';
import { alertLinks } from '../alerts/links.ts';
import { storedAlert, storedLinks } from '../alerts/stored.ts';
import { getIncident, type Incident } from '../incidents/incidents.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { firstAlertPayload, latestAlertStates } from '../store/incident-alerts.ts';
import { rootHashOf, setRootHash, staleRoots } from '../store/incident-roots.ts';
import { latestDiskChange } from '../store/records.ts';
import {
  type AlertCounts,
  type DiskUsage,
  incidentRoot,
  type RootExtras,
  type SlackMessage,
} from './blocks/incident.ts';
import { analysisView, relatedView } from './fleet.ts';
import type { SlackPoster } from './poster.ts';

/**
 * An incident's root message: what it shows (its alerts' latest states, the disks they name, the
 * analysis's headline, the related incidents), rendered by blocks/incident.ts, and its refresh in
 * place once posted.
 */

/**
 * What the root shows of an incident's alerts: the latest delivery of each alert (fingerprint),
 * firing or resolved, so a resolution shows on the root; the disks they name, a mount firing in
 * one alert and resolved in another counting as firing; and how many alerts are in each state.
 */
export async function alertState(
  db: Db,
  incidentId: number,
): Promise<{ disks: DiskUsage[]; alerts: AlertCounts }> {
  const alerts: AlertCounts = { firing: 0, resolved: 0 };
  const usages = new Map<string, DiskUsage>();
  for (const row of await latestAlertStates(db, incidentId)) {
    alerts[row.status]++;
    const alert = storedAlert(row.source, row.payload, row.fingerprint);
    if (!alert?.mount) continue;
    const usage: DiskUsage = { mount: alert.mount, usedPercent: alert.usedPercent, status: row.status };
    const known = usages.get(alert.mount);
    if (!known || (known.status === 'resolved' && row.status === 'firing')) usages.set(alert.mount, usage);
    else if (known.status === row.status && (known.usedPercent ?? -1) < (alert.usedPercent ?? -1))
      usages.set(alert.mount, usage);
  }
  return { disks: [...usages.values()].sort((a, b) => a.mount.localeCompare(b.mount)), alerts };
}

/**
 * What the root shows beyond the incident and its alerts: the links back to its first alert, and
 * the analysis's top finding once there is one.
 */
export async function rootExtras(db: Db, incidentId: number): Promise<RootExtras> {
  const alert = storedLinks(await firstAlertPayload(db, incidentId));
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
  if ((await rootHashOf(db, incident.id)) === hash) return;
  await slack.update({
    channel: incident.channel,
    ts: incident.rootTs,
    text: message.text,
    blocks: message.blocks,
  });
  await setRootHash(db, incident.id, hash);
}

/** Roots marked stale (root_hash cleared: an analysis found their headline) are updated in place. */
export async function refreshStaleRoots(
  db: Db,
  slack: SlackPoster,
  log: Pick<Logger, 'warn'>,
  now: Date,
): Promise<number> {
  const ids = await staleRoots(db);
  for (const id of ids)
    await refreshRoot(db, slack, id, now).catch((error: unknown) =>
      log.warn({ err: error, incident: id }, 'could not refresh the root message'),
    );
  return ids.length;
}
