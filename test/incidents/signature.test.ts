import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  crashSignature,
  describeSignature,
  type FleetIncident,
  fleetOverview,
  relatedIncidents,
  signatureKey,
} from '../../src/incidents/signature.ts';

const sig = (
  topEvidence: string | null,
  executable: string | null = '/usr/bin/php-fpm',
  signal = 'SIGABRT',
) => ({
  executable,
  signal,
  topEvidence,
});
const at = (minute: number) => new Date(Date.UTC(2026, 11, 3, 1, minute));
const incident = (over: Partial<FleetIncident> & Pick<FleetIncident, 'id' | 'host'>): FleetIncident => ({
  status: 'open',
  openedAt: at(over.id),
  coreBytes: 0,
  ...over,
});

describe('crash signatures', () => {
  it('takes the stored signature most dumps share, and none that names nothing', () => {
    const result = {
      signatures: [
        { ...sig('GET /a'), count: 2 },
        { ...sig('GET /stream?customer_id=42'), count: 5 },
        { ...sig('GET /b'), count: 5 },
      ],
    };
    assert.deepEqual(crashSignature(result), sig('GET /stream?customer_id=42'));
    assert.equal(
      crashSignature({ signatures: [{ executable: null, signal: 'SIGSEGV', topEvidence: null, count: 3 }] }),
      undefined,
    );
    assert.equal(crashSignature({ correlations: [] }), undefined, 'an analysis stored before signatures');
    assert.equal(crashSignature(null), undefined);
    assert.equal(crashSignature({ signatures: 'x' }), undefined);
  });

  it('tells crashes apart by executable, signal and evidence', () => {
    const keys = new Set(
      [
        sig('GET /a'),
        sig('GET /b'),
        sig('GET /a', '/usr/bin/node'),
        { ...sig('GET /a'), signal: 'SIGSEGV' },
      ].map(signatureKey),
    );
    assert.equal(keys.size, 4);
    assert.equal(signatureKey(sig('GET /a')), signatureKey({ ...sig('GET /a') }));
    assert.equal(describeSignature(sig('GET /a')), 'php-fpm · SIGABRT · GET /a');
    assert.equal(describeSignature(sig(null, null)), 'unknown program · SIGABRT');
    assert.ok(describeSignature(sig('x'.repeat(500))).length < 160);
  });
});

describe('related incidents', () => {
  const crash = sig('GET /stream?customer_id=42');
  const fleet = [
    incident({ id: 3, host: 'web-1', status: 'resolved', signature: crash }),
    incident({ id: 7, host: 'web-9', status: 'resolved', signature: crash }),
    incident({ id: 12, host: 'web-2', signature: crash }),
    incident({ id: 13, host: 'web-3', signature: sig('GET /other') }),
    incident({ id: 14, host: 'web-4' }),
    incident({ id: 15, host: 'web-5', status: 'mitigated', signature: crash }),
    incident({ id: 16, host: 'web-2', signature: crash }),
  ];
  it('names the same crash on other hosts, not on its own', () => {
    assert.deepEqual(relatedIncidents(fleet[2]!, fleet), {
      sameCrash: [{ id: 15, host: 'web-5' }],
      recurrenceOf: { id: 7, host: 'web-9' },
    });
    assert.deepEqual(relatedIncidents(fleet[5]!, fleet).sameCrash, [
      { id: 12, host: 'web-2' },
      { id: 16, host: 'web-2' },
    ]);
  });
  it('links the latest resolved one before it as a recurrence, none after it', () => {
    assert.deepEqual(relatedIncidents(fleet[1]!, fleet).recurrenceOf, { id: 3, host: 'web-1' });
    assert.equal(relatedIncidents(fleet[0]!, fleet).recurrenceOf, undefined);
  });
  it('relates nothing to an incident without a signature, nor a different crash', () => {
    assert.deepEqual(relatedIncidents(fleet[4]!, fleet), { sameCrash: [] });
    assert.deepEqual(relatedIncidents(fleet[3]!, fleet), { sameCrash: [] });
  });
  it('sums up what is not resolved by crash', () => {
    const overview = fleetOverview(fleet.map((i) => ({ ...i, coreBytes: i.id * 1000 })));
    assert.deepEqual(overview.hosts, ['web-2', 'web-3', 'web-4', 'web-5']);
    assert.equal(overview.open, 4);
    assert.equal(overview.mitigated, 1);
    assert.equal(overview.unknown, 1);
    assert.equal(overview.coreBytes, (12 + 13 + 14 + 15 + 16) * 1000);
    assert.deepEqual(
      overview.signatures.map((s) => [
        s.signature.topEvidence,
        s.incidents.map((i) => i.id),
        s.hosts,
        s.coreBytes,
      ]),
      [
        ['GET /stream?customer_id=42', [12, 15, 16], ['web-2', 'web-5'], 43_000],
        ['GET /other', [13], ['web-3'], 13_000],
      ],
    );
  });
});
