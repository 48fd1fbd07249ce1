import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { ALERT_TOKEN, startTestBot } from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';
import { requireTool } from '../helpers/reference-tools.ts';
import { freePort, until } from '../helpers/wait.ts';

/**
 * A real Prometheus Alertmanager (Debian's prometheus-alertmanager) posting to the bot's webhook
 * with a bearer token: the payload, the retries and the resolved notification are Alertmanager's
 * own, not ours.
 */

for (const database of testDatabases()) {
  describe(`a real Alertmanager posting to the webhook on ${database.name}`, () => {
    let dir: string;
    let db: Db;
    let bot: Bot;
    let alertmanager: ChildProcess;
    let amPort: number;

    before(async () => {
      requireTool('prometheus-alertmanager');
      dir = mkdtempSync(join(tmpdir(), 'nightshift-am-'));
      db = await database.open();
      bot = await startTestBot({ db });
      amPort = await freePort();
      writeFileSync(
        join(dir, 'alertmanager.yml'),
        `route:
  receiver: nightshift
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nightshift
    webhook_configs:
      - url: http://127.0.0.1:${bot.port}/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: ${ALERT_TOKEN}
`,
      );
      alertmanager = spawn(
        'prometheus-alertmanager',
        [
          `--config.file=${join(dir, 'alertmanager.yml')}`,
          `--storage.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${amPort}`,
          '--cluster.listen-address=',
        ],
        { stdio: 'ignore' },
      );
      await until('Alertmanager to start', async () => {
        const res = await fetch(`http://127.0.0.1:${amPort}/-/ready`).catch(() => undefined);
        return res?.ok ? true : undefined;
      });
    });

    after(async () => {
      alertmanager?.kill('SIGTERM');
      await bot?.close();
      await db?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const alert = (endsAt?: string) => [
      {
        labels: {
          alertname: 'NodeFilesystemAlmostOutOfSpace',
          instance: 'web-9:9100',
          mountpoint: '/',
          severity: 'critical',
        },
        annotations: {
          description: 'Filesystem on /dev/vda1 at web-9:9100 has only 2.5% available space left.',
        },
        ...(endsAt ? { endsAt } : {}),
      },
    ];

    it('opens an incident from a firing alert, then records its resolution in the same incident', async () => {
      const posted = await fetch(`http://127.0.0.1:${amPort}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alert()),
      });
      assert.equal(posted.status, 200);
      const incident = await until('the incident', async () => {
        const { rows } = await db.executeSql<{ id: string; title: string; severity: string }>(
          `SELECT id, title, severity FROM incidents WHERE host = 'web-9'`,
        );
        return rows[0];
      });
      assert.equal(incident.title, 'Disk / filling on web-9');
      assert.equal(incident.severity, 'critical');

      await fetch(`http://127.0.0.1:${amPort}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alert(new Date(Date.now() - 1000).toISOString())),
      });
      const resolved = await until('the resolved notification', async () => {
        const { rows } = await db.executeSql<{ incident_id: string }>(
          `SELECT incident_id FROM alerts WHERE host = 'web-9' AND status = 'resolved'`,
        );
        return rows[0];
      });
      assert.equal(resolved.incident_id, incident.id);
      const { rows } = await db.executeSql<{ n: number }>(
        `SELECT count(*)::int AS n FROM incidents WHERE host = 'web-9'`,
      );
      assert.equal(rows[0]!.n, 1);
    });
  });
}
