import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { describe, it } from 'node:test';
import { alertWebhookRoute } from '../../src/http/alert-webhook.ts';
import { startHttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/log.ts';
import { Metrics } from '../../src/metrics.ts';
import { openPglite } from '../../src/store/adapters/pglite.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { alertmanagerDisk as alertmanager } from '../helpers/alert-fixtures.ts';
import { ALERT_TOKEN, suiteBot } from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';

/**
 * Issue 13 §2: payloads the bot cannot store were answered 503, which Alertmanager retries for
 * ever. Each is answered 4xx with the reason now, is recorded, and costs no other alert of its
 * delivery; only a store that is down answers 503.
 */

const bearer = { authorization: `Bearer ${ALERT_TOKEN}` };
const grafana = readFileSync(new URL('../alerts/fixtures/grafana-disk.json', import.meta.url), 'utf8');

/** The Alertmanager fixture with its first alert changed by `edit`, and fingerprints of its own. */
function alertmanagerWith(tag: string, edit: (alert: { labels: Record<string, unknown> }) => void): string {
  const payload = JSON.parse(alertmanager) as {
    alerts: Array<{ labels: Record<string, unknown>; fingerprint: string }>;
  };
  for (const [i, alert] of payload.alerts.entries()) alert.fingerprint = `${tag}-${i}`;
  edit(payload.alerts[0]!);
  return JSON.stringify(payload);
}

const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

for (const database of testDatabases()) {
  describe(`alert webhooks refuse what they cannot store, on ${database.name}`, () => {
    const started = suiteBot(database);
    let posted = 0;
    const post = async (source: string, body: string | Uint8Array) => {
      const res = await fetch(`http://127.0.0.1:${started().bot.port}/alerts/${source}`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', ...bearer },
      });
      posted++;
      return { status: res.status, body: (await res.json()) as Answer };
    };
    interface Answer {
      error?: string;
      delivery?: number;
      recorded?: number;
      alerts?: number;
      rejected?: Array<{ index: number; error: string }>;
      rejectedCount?: number;
    }
    const storedBody = async (delivery: number | undefined) => {
      const { rows } = await started().db.executeSql<{ body: Uint8Array }>(
        'SELECT body FROM alert_deliveries WHERE id = $1',
        [delivery],
      );
      return Buffer.from(rows[0]!.body);
    };
    /** A valid delivery after a bad one: the bot still takes alerts. */
    const stillServing = async (tag: string) => {
      const res = await post('generic', JSON.stringify({ host: `ok-${tag}`, name: 'DiskFull', id: tag }));
      assert.equal(res.status, 202, 'a valid delivery afterwards is accepted');
    };

    it('answers 400 to JSON nested 5,000 deep, for every source, and records it as received', async () => {
      const bodies: Array<[string, string]> = [
        ['alertmanager', deep(5000)],
        ['grafana', JSON.stringify({ ...JSON.parse(grafana), extra: '@' }).replace('"@"', deep(5000))],
        ['generic', `{"host": "web-1", "labels": {"a": ${deep(5000)}}}`],
        ['alertmanager', alertmanager.replace('"job": "node",', `"job": ${deep(5000)},`)],
      ];
      for (const [source, body] of bodies) {
        const res = await post(source, body);
        assert.equal(res.status, 400, `${source}: ${JSON.stringify(res.body)}`);
        assert.match(res.body.error!, /nested deeper than \d+ levels/);
        assert.deepEqual(await storedBody(res.body.delivery), Buffer.from(body), 'kept byte for byte');
      }
      await stillServing('deep');
    });

    it('rejects the alert with a NUL in a label and keeps the other alerts of its delivery', async () => {
      const body = alertmanagerWith('nul', (alert) => {
        alert.labels.job = 'no\u0000de';
      });
      const res = await post('alertmanager', body);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal(res.body.alerts, 1, 'the other alert is stored');
      assert.equal(res.body.rejected?.length, 1);
      assert.equal(res.body.rejectedCount, 1);
      assert.equal(res.body.rejected![0]!.index, 0);
      assert.match(res.body.rejected![0]!.error, /^alerts\.0\.labels\.job: contains a NUL character/);
      const { rows } = await started().db.executeSql<{ fingerprint: string }>(
        `SELECT fingerprint FROM alerts WHERE valid AND fingerprint LIKE 'nul-%'`,
      );
      assert.deepEqual(rows, [{ fingerprint: 'nul-1' }]);
      const why = await started().db.executeSql<{ valid: boolean; error: string }>(
        'SELECT valid, error FROM alerts WHERE id = $1',
        [res.body.recorded],
      );
      assert.equal(why.rows[0]!.valid, false, 'the rejection is recorded with its reason');
      assert.match(why.rows[0]!.error, /^alerts\.0\.labels\.job: contains a NUL character/);
      assert.deepEqual(await storedBody(res.body.delivery), Buffer.from(body));

      // A NUL in a label's name, or in the only alert: nothing usable, so 400 with the reason.
      const onlyOne = JSON.parse(alertmanagerWith('nul-key', () => {})) as { alerts: unknown[] };
      onlyOne.alerts = [{ ...(onlyOne.alerts[0] as object), labels: { 'in\u0000stance': 'web-1:9100' } }];
      const alone = await post('alertmanager', JSON.stringify(onlyOne));
      assert.equal(alone.status, 400);
      assert.match(alone.body.error!, /labels\.in\\u0000stance \(the name\): contains a NUL character/);

      // A NUL byte as such (not the \u0000 escape) is not JSON; the body is kept all the same.
      const raw = Buffer.from(`{"host": "web-1", "name": "a\0b"}`);
      const rawNul = await post('generic', raw);
      assert.equal(rawNul.status, 400);
      assert.match(rawNul.body.error!, /^body is not JSON/);
      assert.deepEqual(await storedBody(rawNul.body.delivery), raw);

      // Grafana and the generic webhook, the same.
      const grafanaNul = JSON.parse(grafana) as { alerts: Array<{ annotations: Record<string, string> }> };
      grafanaNul.alerts[0]!.annotations.summary = 'full\u0000';
      const g = await post('grafana', JSON.stringify(grafanaNul));
      assert.equal(g.status, 400);
      assert.match(g.body.error!, /^alerts\.0\.annotations\.summary: contains a NUL character/);
      const generic = await post(
        'generic',
        JSON.stringify([
          { host: 'web-5', name: 'Disk\u0000Full', id: 'nul-g0' },
          { host: 'web-5', name: 'DiskFull', id: 'nul-g1' },
        ]),
      );
      assert.equal(generic.status, 202);
      assert.deepEqual(
        generic.body.rejected?.map((r) => r.error.replace(/:.*/, '')),
        ['0.name'],
      );
      await stillServing('nul');
    });

    it('rejects the alert whose instance label is 500 KB and keeps the others of its delivery', async () => {
      const huge = `${'web-'.repeat(125_000)}1:9100`;
      const body = alertmanagerWith('huge', (alert) => {
        alert.labels.instance = huge;
      });
      const res = await post('alertmanager', body);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal(res.body.alerts, 1);
      assert.match(
        res.body.rejected![0]!.error,
        /^alerts\.0: the alert's host is 500001 characters long; at most 253/,
      );
      assert.deepEqual(await storedBody(res.body.delivery), Buffer.from(body));

      const alone = JSON.parse(grafana) as { alerts: Array<{ labels: Record<string, string> }> };
      alone.alerts[0]!.labels.host = huge.replace(':9100', '');
      const g = await post('grafana', JSON.stringify(alone));
      assert.equal(g.status, 400);
      assert.match(g.body.error!, /host is 500001 characters long/);
      const { rows } = await started().db.executeSql<{ valid: boolean; error: string }>(
        'SELECT valid, error FROM alerts WHERE id = $1',
        [g.body.recorded],
      );
      assert.equal(rows[0]!.valid, false, 'recorded as invalid, with the reason');
      assert.match(rows[0]!.error, /host is 500001 characters long/);

      // An alert name that long would make the incident's group key too long for its index: the same.
      const longName = await post(
        'alertmanager',
        alertmanagerWith('huge-name', (alert) => {
          alert.labels.alertname = 'X'.repeat(500_000);
        }),
      );
      assert.equal(longName.status, 202);
      assert.match(longName.body.rejected![0]!.error, /name is 500000 characters long/);
      await stillServing('huge');
    });

    it('keeps a body that is not UTF-8 byte for byte, and answers 400', async () => {
      const body = Buffer.concat([
        Buffer.from('{"host": "web-1", "name": "'),
        Buffer.from([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80]),
        Buffer.from('"}'),
      ]);
      const res = await post('generic', body);
      assert.equal(res.status, 400);
      assert.equal(res.body.error, 'body is not UTF-8 text');
      assert.deepEqual(await storedBody(res.body.delivery), body);
      await stillServing('utf8');
    });

    it('records every delivery it answered', async () => {
      const { rows } = await started().db.executeSql<{ n: number }>(
        'SELECT count(*)::int AS n FROM alert_deliveries',
      );
      assert.equal(rows[0]!.n, posted);
    });
  });
}

/** The store itself failing is the one case for 503: the sender should send it again later. */
describe('the alert webhook when the store is closed', () => {
  const stores: Array<[string, () => Promise<Db>]> = [
    ['pglite', () => openPglite(undefined, 'nightshift')],
    ...testDatabases()
      .filter((d) => d.name === 'postgres')
      .map((d): [string, () => Promise<Db>] => [d.name, () => d.open()]),
  ];
  for (const [name, open] of stores) {
    it(`answers 503 on ${name}`, async () => {
      const db = await open();
      await migrate(db);
      const log = createLogger({ level: 'silent' });
      const route = alertWebhookRoute('alertmanager', {
        db,
        token: ALERT_TOKEN,
        channel: '#incidents',
        log,
        metrics: new Metrics(),
      });
      const server: Server = await startHttpServer([route], 0, log);
      let closed = false;
      try {
        const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/alerts/alertmanager`;
        const send = () => fetch(url, { method: 'POST', body: alertmanager, headers: bearer });
        assert.equal((await send()).status, 202);
        await db.close();
        closed = true;
        const res = await send();
        assert.equal(res.status, 503);
        assert.deepEqual(await res.json(), { error: 'could not store the alert; try again' });
      } finally {
        server.close();
        if (!closed) await db.close();
      }
    });
  }
});
