import { readFileSync } from 'node:fs';

/** Alertmanager's webhook delivery for two disks filling on web-1 (test/alerts/fixtures). */
export const alertmanagerDisk = readFileSync(
  new URL('../alerts/fixtures/alertmanager-disk.json', import.meta.url),
  'utf8',
);

/** The same delivery's second alert (/var/lib/docker on web-1) resolved, as Alertmanager sends it. */
export const dockerResolved = (() => {
  const delivery = JSON.parse(alertmanagerDisk);
  const docker = delivery.alerts[1];
  return JSON.stringify({
    ...delivery,
    status: 'resolved',
    alerts: [{ ...docker, status: 'resolved', endsAt: '2026-11-25T23:20:00.000Z' }],
  });
})();
