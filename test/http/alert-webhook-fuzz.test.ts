import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_ALERT_BODY } from '../../src/http/alert-webhook.ts';
import { ALERT_TOKEN, botUrl, suiteBot } from '../helpers/bot.ts';
import { testDatabases } from '../helpers/db.ts';

/**
 * The webhooks fuzzed through the whole bot, for the three sources: payloads shaped like each
 * source's, with deep nesting, NUL and other control characters, unpaired surrogates, huge
 * strings and wrong types in any field, sent as JSON text, as bytes that are not UTF-8, cut short,
 * or as anything at all. While the store is up: never a 5xx, every delivery recorded, and the bot
 * still takes a valid delivery afterwards.
 */

const SOURCES = ['alertmanager', 'grafana', 'generic'] as const;

const SPECIALS = [
  '\u0000',
  '\u0001',
  '\u0007',
  '\b',
  '\u001b',
  '\u001f',
  '\u007f',
  '\u0085',
  '\u2028',
  '\ud800',
  '\udfff',
  '\ufeff',
  '\ufffd',
  '"',
  '\\',
  '[',
  '{',
  ':9100',
  '😀',
];
/** Short strings of what breaks things: control characters, lone surrogates, quotes, brackets. */
const nasty = fc.string({
  unit: fc.oneof(fc.constantFrom(...SPECIALS), fc.string({ minLength: 1, maxLength: 1, unit: 'binary' })),
  maxLength: 12,
});
const huge = fc
  .tuple(
    fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 250, max: 5_000 }) },
      { weight: 1, arbitrary: fc.integer({ min: 100_000, max: 600_000 }) },
    ),
    fc.constantFrom('h', 'é', '😀', '\u0000', 'web-1.'),
  )
  .map(([n, c]) => c.repeat(Math.ceil(n / c.length)));
const text = fc.oneof(
  { weight: 3, arbitrary: nasty },
  { weight: 4, arbitrary: fc.constantFrom('web-1:9100', 'db-2', '/', 'DiskFull', 'critical') },
  { weight: 1, arbitrary: huge },
);
/** Replaced by that many nested arrays once the body is JSON text. */
const deepMarker = fc.integer({ min: 20, max: 20_000 }).map((n) => ({ __deep: n }));
const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(nasty, fc.integer(), { maxKeys: 2 }),
);
/** Anything at all where a string belongs. */
const value = fc.oneof(
  { weight: 8, arbitrary: text },
  { weight: 2, arbitrary: wrongType },
  { weight: 1, arbitrary: deepMarker },
);
/** Mostly what the field should hold, now and then anything: most deliveries get to their alerts. */
const mostly = <T>(good: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 25, arbitrary: good }, { weight: 1, arbitrary: value });
const labels = mostly(
  fc.dictionary(
    fc.oneof(fc.constantFrom('instance', 'host', 'alertname', 'mountpoint', 'severity'), nasty),
    mostly(text),
    { maxKeys: 5 },
  ),
);
const status = mostly(fc.constantFrom('firing', 'resolved'));

const alertmanagerAlert = fc.record(
  {
    status,
    labels,
    annotations: labels,
    startsAt: mostly(fc.constant('2026-11-25T22:58:11Z')),
    fingerprint: mostly(fc.uuid()),
    generatorURL: mostly(text),
    values: fc.dictionary(nasty, mostly(fc.double()), { maxKeys: 2 }),
  },
  { requiredKeys: ['status', 'labels', 'fingerprint'] },
);
const alerts = mostly(fc.array(alertmanagerAlert, { minLength: 1, maxLength: 4 }));
const alertmanagerBody = fc.record(
  {
    version: mostly(fc.constant('4')),
    groupKey: mostly(fc.constant('{}:{alertname="DiskFull"}')),
    status,
    receiver: mostly(fc.constant('nightshift')),
    commonLabels: labels,
    alerts,
    extra: value,
  },
  { requiredKeys: ['version', 'groupKey', 'status', 'receiver', 'alerts'] },
);
const grafanaBody = fc.record(
  {
    receiver: mostly(fc.constant('nightshift')),
    status,
    orgId: mostly(fc.constant(1)),
    alerts,
    version: mostly(fc.constant('1')),
    groupKey: mostly(fc.constant('{}:{}')),
    title: value,
  },
  { requiredKeys: ['receiver', 'status', 'orgId', 'alerts', 'version', 'groupKey'] },
);
const genericAlert = fc.record(
  {
    host: mostly(text),
    status,
    name: mostly(text),
    problem: mostly(text),
    summary: mostly(text),
    severity: mostly(fc.constantFrom('critical', 'warning', 'info')),
    id: mostly(fc.uuid()),
    startsAt: mostly(fc.constant('2026-11-25T22:58:11Z')),
    labels,
    disk: mostly(
      fc.record(
        { mount: mostly(text), usedPercent: mostly(fc.double({ min: 0, max: 100 })) },
        { requiredKeys: ['mount'] },
      ),
    ),
  },
  { requiredKeys: ['host'] },
);
const genericBody = fc.oneof(genericAlert, fc.array(genericAlert, { minLength: 1, maxLength: 4 }));

/** JSON text with the deep markers spelled out ("{" + quote cannot occur inside a JSON string). */
const asText = (payload: unknown) =>
  JSON.stringify(payload).replace(/\{"__deep":(\d+)\}/g, (_, n) => `${'['.repeat(+n)}${']'.repeat(+n)}`);

const INVALID_UTF8 = [
  [0xff],
  [0x80],
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
  [0],
];

/** A body for `source`, in one of the ways a sender can get it wrong. */
function bodyFor(source: (typeof SOURCES)[number]): fc.Arbitrary<string | Buffer> {
  const shaped = { alertmanager: alertmanagerBody, grafana: grafanaBody, generic: genericBody }[source].map(
    asText,
  );
  return fc.oneof(
    { weight: 6, arbitrary: shaped },
    {
      weight: 2,
      arbitrary: fc.tuple(shaped, fc.nat(), fc.constantFrom(...INVALID_UTF8)).map(([t, at, bytes]) => {
        const b = Buffer.from(t);
        const i = at % (b.length + 1);
        return Buffer.concat([b.subarray(0, i), Buffer.from(bytes), b.subarray(i)]);
      }),
    },
    { weight: 1, arbitrary: fc.tuple(shaped, fc.nat()).map(([t, at]) => t.slice(0, at % (t.length + 1))) },
    { weight: 1, arbitrary: fc.oneof(fc.json(), fc.string({ unit: 'binary' }), deepMarker.map(asText)) },
  );
}

const delivery = fc
  .constantFrom(...SOURCES)
  .chain((source) => fc.tuple(fc.constant(source), bodyFor(source)));

for (const database of testDatabases()) {
  describe(`alert webhooks fuzzed on ${database.name}`, () => {
    const started = suiteBot(database);
    const url = (path: string) => botUrl(started().bot, path);

    it('never answers 5xx while the store is up, records every delivery, and keeps serving', async () => {
      let recorded = 0;
      await fc.assert(
        fc.asyncProperty(delivery, async ([source, body]) => {
          const tooLarge = Buffer.byteLength(body) > MAX_ALERT_BODY;
          const res = await fetch(url(`/alerts/${source}`), {
            method: 'POST',
            body,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${ALERT_TOKEN}` },
          }).catch((error: unknown) => {
            // Refused before it was all sent: the bot may close the connection under the upload.
            if (tooLarge) return undefined;
            throw error;
          });
          if (res === undefined) return;
          const answer = (await res.json()) as { delivery?: unknown; error?: unknown };
          if (tooLarge) {
            assert.equal(res.status, 413);
            return;
          }
          recorded++;
          assert.ok(res.status === 202 || res.status === 400, `${res.status} ${JSON.stringify(answer)}`);
          assert.equal(typeof answer.delivery, 'number', 'the answer names the delivery it recorded');
          if (res.status === 400) assert.equal(typeof answer.error, 'string');
        }),
        { numRuns: 100 },
      );
      const { rows } = await started().db.executeSql<{ n: number }>(
        'SELECT count(*)::int AS n FROM alert_deliveries',
      );
      assert.equal(rows[0]!.n, recorded, 'every delivery answered is recorded');
      const valid = await fetch(url('/alerts/generic'), {
        method: 'POST',
        body: JSON.stringify({ host: 'web-9', name: 'DiskFull', disk: { mount: '/' } }),
        headers: { authorization: `Bearer ${ALERT_TOKEN}` },
      });
      assert.equal(valid.status, 202, 'a valid delivery afterwards is accepted');
      assert.equal((await fetch(url('/readyz'))).status, 200);
    });
  });
}
