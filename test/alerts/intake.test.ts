import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { recordDelivery } from '../../src/alerts/intake.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { testDatabases } from '../helpers/db.ts';

const alertmanager = readFileSync(new URL('./fixtures/alertmanager-disk.json', import.meta.url), 'utf8');
const options = { channel: '#incidents' };

const generic = (host: string, extra: object = {}) =>
  JSON.stringify({ host, name: 'DiskFull', disk: { mount: '/', usedPercent: 99 }, ...extra });

async function count(db: Db, sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await db.executeSql<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, values);
  return rows[0]!.n;
}

for (const database of testDatabases()) {
  describe(`alert intake on ${database.name}`, () => {
    const withDb = async (work: (db: Db) => Promise<void>) => {
      const db = await database.open();
      try {
        await migrate(db);
        await work(db);
      } finally {
        await db.close();
      }
    };

    it('stores a batch, opens one incident for the host, and queues one root and one reply per alert', () =>
      withDb(async (db) => {
        const result = await recordDelivery(db, 'alertmanager', alertmanager, options);
        assert.equal(result.status, 'accepted');
        assert.ok(result.status === 'accepted');
        assert.equal(result.alerts, 2);
        assert.equal(result.incidents.length, 1);
        assert.equal(result.incidents[0]!.opened, true);
        const { rows } = await db.executeSql<{
          title: string;
          host: string;
          severity: string;
          status: string;
        }>('SELECT title, host, severity, status FROM incidents');
        assert.deepEqual(rows, [
          { title: 'Disk / filling on web-1', host: 'web-1', severity: 'critical', status: 'open' },
        ]);
        assert.equal(await count(db, "thread_messages WHERE role = 'root'"), 1);
        assert.equal(await count(db, "thread_messages WHERE role = 'reply'"), 2);
        assert.equal(await count(db, "audit_log WHERE action = 'incident.opened'"), 1);
        const stored = await db.executeSql<{ body: Uint8Array; outcome: string; accepted: number }>(
          'SELECT body, outcome, accepted FROM alert_deliveries',
        );
        assert.equal(stored.rows.length, 1, 'one delivery row');
        assert.deepEqual(Buffer.from(stored.rows[0]!.body), Buffer.from(alertmanager), 'kept byte for byte');
        assert.deepEqual([stored.rows[0]!.outcome, stored.rows[0]!.accepted], ['accepted', 2]);
        assert.equal(await count(db, 'alerts WHERE delivery_id = $1', [result.delivery]), 2);
      }));

    it('stores a duplicate delivery once and queues nothing new (Alertmanager HA, Slack retries)', () =>
      withDb(async (db) => {
        await recordDelivery(db, 'alertmanager', alertmanager, options);
        const again = await recordDelivery(db, 'alertmanager', alertmanager, options);
        assert.ok(again.status === 'accepted');
        assert.equal(again.alerts, 0);
        assert.equal(again.duplicates, 2);
        assert.equal(await count(db, 'incidents'), 1);
        assert.equal(await count(db, 'thread_messages'), 3);
      }));

    it('makes exactly one incident from many concurrent alerts for one host', () =>
      withDb(async (db) => {
        const deliveries = Array.from({ length: 25 }, (_, i) => generic('web-7', { id: `a${i}` }));
        const results = await Promise.all(
          deliveries.map((body) => recordDelivery(db, 'generic', body, options)),
        );
        const opened = results.flatMap((r) =>
          r.status === 'accepted' ? r.incidents.filter((t) => t.opened) : [],
        );
        assert.equal(opened.length, 1);
        assert.equal(await count(db, 'incidents'), 1);
        assert.equal(await count(db, 'alerts WHERE incident_id IS NOT NULL'), 25);
        assert.equal(await count(db, "thread_messages WHERE role = 'root'"), 1);
      }));

    it('keeps a resolved alert in the open thread, and links a re-fire after resolution to the earlier incident', () =>
      withDb(async (db) => {
        const first = await recordDelivery(db, 'generic', generic('db-1', { id: 'x' }), options);
        assert.ok(first.status === 'accepted');
        const incident = first.incidents[0]!.incidentId;
        const resolved = await recordDelivery(
          db,
          'generic',
          generic('db-1', { id: 'x', status: 'resolved' }),
          options,
        );
        assert.ok(resolved.status === 'accepted');
        assert.deepEqual(
          resolved.incidents.map((t) => [t.incidentId, t.opened]),
          [[incident, false]],
        );
        await db.executeSql(`UPDATE incidents SET status = 'resolved', resolved_at = now() WHERE id = $1`, [
          incident,
        ]);
        const refire = await recordDelivery(
          db,
          'generic',
          generic('db-1', { id: 'x', startsAt: '2026-11-26T01:00:00Z' }),
          options,
        );
        assert.ok(refire.status === 'accepted');
        assert.equal(refire.incidents[0]!.opened, true);
        assert.equal(refire.incidents[0]!.previousIncidentId, incident);
      }));

    it('records a bad payload with its reason instead of dropping it', () =>
      withDb(async (db) => {
        const result = await recordDelivery(db, 'alertmanager', '{"version": "4", "alerts": []', options);
        assert.equal(result.status, 'invalid');
        const { rows } = await db.executeSql<{ valid: boolean; error: string; body: Uint8Array }>(
          'SELECT a.valid, a.error, d.body FROM alerts a JOIN alert_deliveries d ON d.id = a.delivery_id',
        );
        assert.equal(rows[0]!.valid, false);
        assert.match(rows[0]!.error, /^body is not JSON/);
        assert.equal(Buffer.from(rows[0]!.body).toString(), '{"version": "4", "alerts": []');
        assert.equal(await count(db, 'incidents'), 0);
      }));

    it('records a delivery whose alerts are all duplicates, with nothing new', () =>
      withDb(async (db) => {
        await recordDelivery(db, 'alertmanager', alertmanager, options);
        const again = await recordDelivery(db, 'alertmanager', alertmanager, options);
        assert.ok(again.status === 'accepted');
        const { rows } = await db.executeSql<{ outcome: string; accepted: number; duplicates: number }>(
          'SELECT outcome, accepted, duplicates FROM alert_deliveries WHERE id = $1',
          [again.delivery],
        );
        assert.deepEqual(rows, [{ outcome: 'accepted', accepted: 0, duplicates: 2 }]);
      }));

    it('lists the rejected alerts of a delivery in its row, and stores the others', () =>
      withDb(async (db) => {
        const result = await recordDelivery(
          db,
          'generic',
          JSON.stringify([
            { host: 'web-1', id: 'a' },
            { host: 'web-1', summary: 'x\u0000', id: 'b' },
            { id: 'c' },
          ]),
          options,
        );
        assert.ok(result.status === 'accepted');
        assert.equal(result.alerts, 1);
        const { rows } = await db.executeSql<{ rejected: unknown; rejected_count: number }>(
          'SELECT rejected, rejected_count FROM alert_deliveries WHERE id = $1',
          [result.delivery],
        );
        const rejected = (
          typeof rows[0]!.rejected === 'string' ? JSON.parse(rows[0]!.rejected) : rows[0]!.rejected
        ) as Array<{ index: number; error: string }>;
        assert.deepEqual(
          rejected.map((r) => r.index),
          [1, 2],
        );
        assert.match(rejected[0]!.error, /^1\.summary: contains a NUL/);
        assert.match(rejected[1]!.error, /^2\.host: /);
        assert.equal(rows[0]!.rejected_count, 2);
        const why = await db.executeSql<{ error: string }>('SELECT error FROM alerts WHERE id = $1', [
          result.recorded,
        ]);
        assert.match(why.rows[0]!.error, /^1\.summary: contains a NUL .*; 2\.host: /);
      }));

    it('rejects only the alert PostgreSQL refuses, past the checks, and keeps the others', () =>
      withDb(async (db) => {
        // A store that refuses one host, as PostgreSQL refuses a value the parser did not foresee.
        const refusing: Db = {
          ...db,
          transaction: (work) =>
            db.transaction((tx) =>
              work({
                ...tx,
                executeSql: (text, values) =>
                  values?.includes('refused-host')
                    ? tx.executeSql("SELECT 'x'::int").then(() => ({ rows: [] }))
                    : tx.executeSql(text, values),
              }),
            ),
        };
        const result = await recordDelivery(
          refusing,
          'generic',
          JSON.stringify([
            { host: 'web-1', id: 'a' },
            { host: 'refused-host', id: 'b' },
            { host: 'web-2', id: 'c' },
          ]),
          options,
        );
        assert.ok(result.status === 'accepted', JSON.stringify(result));
        assert.equal(result.alerts, 2);
        assert.deepEqual(
          result.rejected.map((r) => r.index),
          [1],
        );
        assert.match(
          result.rejected[0]!.error,
          /^the store refused it: invalid input syntax for type integer/,
        );
        assert.equal(await count(db, 'alerts WHERE valid'), 2);
        assert.equal(await count(db, 'incidents'), 2);

        const alone = await recordDelivery(
          refusing,
          'generic',
          JSON.stringify({ host: 'refused-host' }),
          options,
        );
        assert.equal(alone.status, 'invalid');
        // One row with why for each delivery: the alert refused beside two stored ones, and this one.
        assert.equal(await count(db, 'alerts WHERE NOT valid'), 2);
      }));
  });
}
