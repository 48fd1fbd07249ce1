import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { dedupKey, groupKey, hostFromLabels, parseUsedPercent } from '../../src/alerts/alert.ts';
import {
  ALERT_SOURCES,
  MAX_DEPTH,
  MAX_HOST,
  nestedDeeperThan,
  parseDelivery,
} from '../../src/alerts/parse.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('parseDelivery', () => {
  it('reads an Alertmanager v4 batch of node_exporter disk alerts', () => {
    const parsed = parseDelivery('alertmanager', fixture('alertmanager-disk.json'));
    assert.ok(parsed.ok);
    assert.deepEqual(
      parsed.alerts.map((a) => [
        a.host,
        a.problem,
        a.mount,
        a.usedPercent,
        a.severity,
        a.status,
        a.startsAt,
        a.endsAt,
      ]),
      [
        ['web-1', 'disk', '/', 96.88, 'critical', 'firing', '2026-11-25T22:58:11.123Z', null],
        ['web-1', 'disk', '/var/lib/docker', 98.98, 'critical', 'firing', '2026-11-25T22:59:41.000Z', null],
      ],
    );
    assert.equal(groupKey(parsed.alerts[0]!), 'web-1:disk');
    assert.equal(groupKey(parsed.alerts[1]!), 'web-1:disk', 'both mounts go to one incident');
    assert.notEqual(dedupKey(parsed.alerts[0]!), dedupKey(parsed.alerts[1]!));
  });

  it('reads a Grafana alerting webhook and takes the used percent from its values', () => {
    const parsed = parseDelivery('grafana', fixture('grafana-disk.json'));
    assert.ok(parsed.ok);
    const [alert] = parsed.alerts;
    assert.equal(alert!.source, 'grafana');
    assert.equal(alert!.host, 'web-2');
    assert.equal(alert!.problem, 'disk');
    assert.equal(alert!.usedPercent, 96.4);
    assert.equal(alert!.summary, 'Root filesystem on web-2 is almost full');
  });

  it('reads the generic webhook: one alert or several', () => {
    const one = parseDelivery(
      'generic',
      JSON.stringify({ host: 'db-1', name: 'DiskFull', disk: { mount: '/data', usedPercent: 99 } }),
    );
    assert.ok(one.ok);
    assert.deepEqual(
      [one.alerts[0]!.host, one.alerts[0]!.problem, one.alerts[0]!.status],
      ['db-1', 'disk', 'firing'],
    );
    const many = parseDelivery(
      'generic',
      JSON.stringify([{ host: 'a' }, { host: 'b', status: 'resolved', name: 'Load' }]),
    );
    assert.ok(many.ok);
    assert.deepEqual(
      many.alerts.map((a) => `${a.host}:${a.problem}:${a.status}`),
      ['a:alert:firing', 'b:Load:resolved'],
    );
  });

  it('says what is wrong with a bad payload', () => {
    const notJson = parseDelivery('alertmanager', '{"version": "4",');
    assert.equal(notJson.ok, false);
    assert.match(!notJson.ok ? notJson.error : '', /^body is not JSON/);
    const wrongVersion = parseDelivery(
      'alertmanager',
      JSON.stringify({ ...JSON.parse(fixture('alertmanager-disk.json')), version: '3' }),
    );
    assert.match(
      !wrongVersion.ok ? wrongVersion.error : '',
      /version: only Alertmanager webhook payload version 4/,
    );
    const noHost = parseDelivery('generic', JSON.stringify({ name: 'x' }));
    assert.match(!noHost.ok ? noHost.error : '', /^host: /);
  });

  it('refuses a body nested deeper than MAX_DEPTH before parsing it; brackets in strings do not count', () => {
    const deep = `${'['.repeat(MAX_DEPTH + 1)}${']'.repeat(MAX_DEPTH + 1)}`;
    assert.ok(nestedDeeperThan(deep, MAX_DEPTH));
    assert.ok(!nestedDeeperThan(`${'['.repeat(MAX_DEPTH)}${']'.repeat(MAX_DEPTH)}`, MAX_DEPTH));
    assert.ok(!nestedDeeperThan(JSON.stringify({ host: 'a', summary: `"\\[{${'['.repeat(100)}` }), 4));
    const parsed = parseDelivery('generic', `{"host": "a", "labels": ${deep}}`);
    assert.deepEqual(parsed, {
      ok: false,
      error: `body is nested deeper than ${MAX_DEPTH} levels`,
      rejected: [],
    });
  });

  it('rejects an alert it cannot store and keeps the others: NUL, unpaired surrogate, over-long host', () => {
    const parsed = parseDelivery(
      'generic',
      JSON.stringify([
        { host: 'a', labels: { job: 'x\u0000' } },
        { host: 'b', summary: '\ud800' },
        { host: 'c', labels: { ['k\u0000']: 'v' } },
        { host: 'd'.repeat(MAX_HOST + 1) },
        { host: 'e' },
      ]),
    );
    assert.ok(parsed.ok);
    assert.deepEqual(
      parsed.alerts.map((a) => a.host),
      ['e'],
    );
    assert.deepEqual(
      parsed.rejected.map((r) => r.error.replace(/(NUL|unpaired|characters long).*/, '$1')),
      [
        '0.labels.job: contains a NUL',
        '1.summary: contains an unpaired',
        '2.labels.k\\u0000 (the name): contains a NUL',
        '3.host: Too big: expected string to have <=253 characters',
      ],
    );
  });

  it('never throws on any body, for any source', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ALERT_SOURCES), fc.oneof(fc.string(), fc.json()), (source, body) => {
        const parsed = parseDelivery(source, body);
        assert.equal(typeof parsed.ok, 'boolean');
      }),
      { numRuns: 500 },
    );
  });
});

describe('parseUsedPercent', () => {
  it('reads used or free percentages in alert text', () => {
    assert.equal(parseUsedPercent('at web-1:9100 has only 3.12% available space left.'), 96.88);
    assert.equal(parseUsedPercent('Filesystem has less than 5% space left.'), 95);
    assert.equal(parseUsedPercent('disk usage is 97.5%'), 97.5);
    assert.equal(parseUsedPercent('91% used on /data'), 91);
    assert.equal(parseUsedPercent('the disk is filling up'), null);
  });
});

describe('hostFromLabels', () => {
  it('prefers host labels and strips the exporter port', () => {
    assert.equal(hostFromLabels({ instance: 'web-1:9100' }), 'web-1');
    assert.equal(hostFromLabels({ instance: '[2001:db8::1]:9100' }), '2001:db8::1');
    assert.equal(hostFromLabels({ instance: '10.0.0.5:9100', hostname: 'web-9' }), 'web-9');
    assert.equal(hostFromLabels({ job: 'node' }), null);
  });
});
