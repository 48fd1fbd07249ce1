import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { type AlertSource, parseDelivery } from '../../src/alerts/parse.ts';
import { storedAlert } from '../../src/alerts/stored.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

const DELIVERIES: Array<[AlertSource, string]> = [
  ['alertmanager', fixture('alertmanager-disk.json')],
  ['grafana', fixture('grafana-disk.json')],
  [
    'generic',
    JSON.stringify([
      { host: 'db-1', name: 'DiskFull', disk: { mount: '/var', usedPercent: 93 } },
      { host: 'db-2', name: 'DiskFull', labels: { mountpoint: '/data' } },
      { host: 'db-3', name: 'HighLoad', problem: 'load' },
    ]),
  ],
];

describe('storedAlert', () => {
  it('reads each stored alert as the intake normalized it: the mount and used percent it grouped by', () => {
    for (const [source, body] of DELIVERIES) {
      const parsed = parseDelivery(source, body);
      assert.ok(parsed.ok, source);
      for (const item of parsed.items) {
        // As the intake stores it (alerts.payload, jsonb): the alert as its schema read it.
        const payload = JSON.parse(JSON.stringify(item.payload));
        assert.deepEqual(storedAlert(source, payload, item.alert.fingerprint), item.alert, source);
      }
    }
  });

  it("shows Grafana's evaluated value when the alert's words give no percent", () => {
    const parsed = parseDelivery('grafana', fixture('grafana-disk.json'));
    assert.ok(parsed.ok);
    const item = parsed.items[0]!;
    assert.equal(storedAlert('grafana', item.payload, item.alert.fingerprint)?.usedPercent, 96.4);
  });

  it('finds the alert by its fingerprint in a whole delivery (rows stored before migration 9)', () => {
    const body = fixture('alertmanager-disk.json');
    const parsed = parseDelivery('alertmanager', body);
    assert.ok(parsed.ok);
    assert.ok(parsed.alerts.length > 1, 'the fixture holds several alerts');
    for (const alert of parsed.alerts)
      assert.deepEqual(storedAlert('alertmanager', JSON.parse(body), alert.fingerprint), alert);
    assert.equal(storedAlert('alertmanager', JSON.parse(body), 'no-such-fingerprint'), undefined);
  });

  it('reads nothing from a payload that is not its source alert', () => {
    assert.equal(storedAlert('alertmanager', { labels: 'not labels' }, 'x'), undefined);
    assert.equal(storedAlert('generic', null, 'x'), undefined);
  });
});
