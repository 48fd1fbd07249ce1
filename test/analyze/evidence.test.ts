import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EvidenceCollector, MAX_DISTINCT_PER_KIND } from '../../src/analyze/evidence.ts';

function collect(strings: readonly string[]) {
  const collector = new EvidenceCollector();
  for (const text of strings) collector.onString(text, 0, 'ascii');
  return collector.snapshot();
}

describe('EvidenceCollector', () => {
  it('counts every copy of a repeated string, with or without a secret in it', () => {
    const url = 'GET /feeds/radio?id=7 HTTP/1.1 from http://radio.example.net/live';
    const secret = 'DATABASE_URL=postgres://app:hunter2hunter2@db.internal/app';
    const copies = 5_000;
    const strings = Array.from({ length: copies }, (_, i) => (i % 2 === 0 ? url : secret));
    const snapshot = collect(strings);
    const count = (kind: string, value: string) =>
      snapshot.items.find((i) => i.kind === kind && i.value === value)?.count;
    assert.equal(snapshot.strings, copies);
    assert.equal(count('request', 'GET /feeds/radio?id=7'), copies / 2);
    assert.equal(count('url', 'http://radio.example.net/live'), copies / 2);
    assert.equal(count('env', 'DATABASE_URL=postgres://app:[REDACTED]@db.internal/app'), copies / 2);
    // Each copy of the secret is hidden and counted, not only the first.
    assert.equal(snapshot.redactions, (copies / 2) * collect([secret]).redactions);
    assert.ok(snapshot.redactions >= copies / 2);
    assert.deepEqual(snapshot.secrets, ['hunter2hunter2']);
  });

  it('gives the same result however many distinct strings come between two copies', () => {
    const url = 'see http://radio.example.net/live';
    // Far more than the recent strings remembered (MAX_RECENT), all of them kept.
    const between = Array.from(
      { length: MAX_DISTINCT_PER_KIND - 1 },
      (_, i) => `X${i}=http://host${i}.example/`,
    );
    const snapshot = collect([url, ...between, url]);
    assert.equal(snapshot.items.find((i) => i.value === 'http://radio.example.net/live')?.count, 2);
    assert.equal(snapshot.items.filter((i) => i.kind === 'url').length, MAX_DISTINCT_PER_KIND);
  });
});
