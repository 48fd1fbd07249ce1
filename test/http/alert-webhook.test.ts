import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sign } from '../../src/http/auth.ts';
import { createLogger } from '../../src/log.ts';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { alertmanagerDisk as alertmanager } from '../helpers/alert-fixtures.ts';
import { ALERT_TOKEN, botUrl, postAlert, startTestBot } from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';

const grafana = readFileSync(new URL('../alerts/fixtures/grafana-disk.json', import.meta.url), 'utf8');

for (const database of testDatabases()) {
  describe(`alert webhooks over HTTP on ${database.name}`, () => {
    let bot: Bot;
    let db: Db;
    const logs: string[] = [];
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(botUrl(bot, path), {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', ...headers },
      });
    const bearer = { authorization: `Bearer ${ALERT_TOKEN}` };

    before(async () => {
      db = await database.open();
      const destination = new Writable({
        write(chunk, _encoding, done) {
          logs.push(chunk.toString());
          done();
        },
      });
      bot = await startTestBot({ db, log: createLogger({ level: 'debug', destination }) });
    });
    after(async () => {
      await bot.close();
      await db.close();
    });

    it('refuses a delivery without the token, or with a wrong one', async () => {
      assert.equal((await post('/alerts/alertmanager', alertmanager)).status, 401);
      assert.equal(
        (await post('/alerts/alertmanager', alertmanager, { authorization: 'Bearer nope' })).status,
        401,
      );
      const { rows } = await db.executeSql<{ n: number }>('SELECT count(*)::int AS n FROM alerts');
      assert.equal(rows[0]!.n, 0);
    });

    it('accepts an Alertmanager delivery with the bearer token: 202, stored, one incident', async () => {
      const res = await post('/alerts/alertmanager', alertmanager, bearer);
      assert.equal(res.status, 202);
      const body = (await res.json()) as { alerts: number; incidents: Array<{ opened: boolean }> };
      assert.equal(body.alerts, 2);
      assert.equal(body.incidents[0]!.opened, true);
      const again = (await (await post('/alerts/alertmanager', alertmanager, bearer)).json()) as {
        duplicates: number;
      };
      assert.equal(again.duplicates, 2);
    });

    it('accepts an HMAC signature instead of the token, and Grafana signatures with a timestamp', async () => {
      const generic = JSON.stringify({ host: 'web-3', name: 'DiskFull', disk: { mount: '/' } });
      const signed = await post('/alerts/generic', generic, {
        'x-nightshift-signature': `sha256=${sign(generic, ALERT_TOKEN)}`,
      });
      assert.equal(signed.status, 202);
      const forged = await post('/alerts/generic', generic, {
        'x-nightshift-signature': `sha256=${sign(`${generic} `, ALERT_TOKEN)}`,
      });
      assert.equal(forged.status, 401);
      const timestamp = '1764111600';
      const grafanaSigned = await post('/alerts/grafana', grafana, {
        'x-grafana-alerting-signature': sign(grafana, ALERT_TOKEN, timestamp),
        'x-grafana-alerting-timestamp': timestamp,
      });
      assert.equal(grafanaSigned.status, 202);
    });

    it('answers 400 with the reason for a bad payload, and records it', async () => {
      const res = await post('/alerts/generic', '{"name": "no host"}', bearer);
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: string; recorded: number };
      assert.match(body.error, /host/);
      const { rows } = await db.executeSql<{ valid: boolean }>('SELECT valid FROM alerts WHERE id = $1', [
        body.recorded,
      ]);
      assert.deepEqual(rows, [{ valid: false }]);
    });

    it('refuses a body over 1 MiB with 413', async () => {
      const res = await post('/alerts/generic', 'x'.repeat(1024 * 1024 + 1), bearer);
      assert.equal(res.status, 413);
    });

    it('serves health, readiness and metrics', async () => {
      assert.equal((await fetch(botUrl(bot, '/healthz'))).status, 200);
      const ready = (await (await fetch(botUrl(bot, '/readyz'))).json()) as { store: string };
      assert.equal(ready.store, database.name);
      const metrics = await (await fetch(botUrl(bot, '/metrics'))).text();
      assert.match(metrics, /# TYPE nightshift_alerts_received_total counter/);
      assert.match(metrics, /nightshift_alerts_received_total\{result="accepted",source="alertmanager"\} 2/);
      assert.match(
        metrics,
        /nightshift_alerts_received_total\{result="unauthorized",source="alertmanager"\} 2/,
      );
      assert.match(metrics, /nightshift_incidents_open\{status="open"\} [1-9]/);
      assert.match(metrics, /nightshift_store_up 1/);
      assert.match(metrics, /nightshift_approval_latency_seconds_count 0/);
      // A proposal approved 90 s after it was posted shows in the approval latency.
      const incident = await db.executeSql<{ id: string }>('SELECT id FROM incidents LIMIT 1');
      const proposal = await db.executeSql<{ id: string }>(
        `INSERT INTO proposals (incident_id, kind, target, text, sha256, proposed_by, expires_at, created_at)
         VALUES ($1, 'sql', 'app', 'SELECT 1', 'h', 'agent', now() + interval '1 hour', now() - interval '90 seconds') RETURNING id`,
        [incident.rows[0]!.id],
      );
      await db.executeSql(
        `INSERT INTO approvals (proposal_id, sha256, decision, decided_by, via) VALUES ($1, 'h', 'approved', 'U1', 'button')`,
        [proposal.rows[0]!.id],
      );
      const after = await (await fetch(botUrl(bot, '/metrics'))).text();
      assert.match(after, /nightshift_approval_latency_seconds_count 1/);
      assert.match(after, /nightshift_approval_latency_seconds\{quantile="0\.5"\} 9\d/);
    });

    it('never writes the webhook token to the log', () => {
      assert.ok(logs.length > 0);
      assert.ok(!logs.join('').includes(ALERT_TOKEN));
    });
  });
}

for (const database of testDatabases()) {
  describe(`alert webhooks when the store is down on ${database.name}`, () => {
    it('answer 503 so Alertmanager retries', async () => {
      const db = await database.open();
      const bot = await startTestBot({ db });
      try {
        await db.executeSql('DROP TABLE alerts CASCADE');
        const res = await postAlert(bot, 'alertmanager', alertmanager);
        assert.equal(res.status, 503);
        assert.equal((await fetch(botUrl(bot, '/readyz'))).status, 200);
      } finally {
        await bot.close();
        await db.close();
      }
    });
  });
}
