import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KnownSecrets, mayHoldSecret, redact } from '../../src/analyze/redact.ts';

const cases: Array<[string, string, string]> = [
  [
    'URL password',
    'postgres://app:hunter2-s3cret@db.internal:5432/app',
    'postgres://app:[REDACTED]@db.internal:5432/app',
  ],
  ['https userinfo', 'https://bob:pa55word@example.com/x', 'https://bob:[REDACTED]@example.com/x'],
  [
    'Sentry DSN key',
    'https://abc123publickey0000ff@o4711.ingest.sentry.io/42',
    'https://[REDACTED]@o4711.ingest.sentry.io/42',
  ],
  ['Slack bot token', 'token xoxb-1234567890-abcdefghij', 'token xox-[REDACTED]'],
  ['Slack app token', 'xapp-1-A0123-456-abcdef0123', 'xapp-[REDACTED]'],
  ['AWS key id', 'AKIAIOSFODNN7EXAMPLE', '[REDACTED]'],
  ['bearer header', 'Authorization: Bearer eyJhbGciOi.abc.def-ghi', 'Authorization: Bearer [REDACTED]'],
  ['env password', 'DATABASE_PASSWORD=hunter2-s3cret', 'DATABASE_PASSWORD=[REDACTED]'],
  ['env token', 'GITHUB_TOKEN=abcdef', 'GITHUB_TOKEN=[REDACTED]'],
  ['env key', 'STRIPE_API_KEY=sk_test_123456', 'STRIPE_API_KEY=[REDACTED]'],
  ['JSON secret', '{"client_secret": "s3cr3t-value"}', '{"client_secret": "[REDACTED]"}'],
  ['python repr', "{'password': 'hunter2'}", "{'password': '[REDACTED]'}"],
  [
    'query token',
    'https://api.example.com/v1?access_token=abc123&x=1',
    'https://api.example.com/v1?access_token=[REDACTED]&x=1',
  ],
  ['flag', 'worker --api-key s3cr3tvalue --queue feeds', 'worker --api-key [REDACTED] --queue feeds'],
  [
    'private key',
    '-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----',
    '-----BEGIN RSA PRIVATE KEY----- [REDACTED]',
  ],
  ['anthropic key', 'sk-ant-api03-abcdefghijklmnopqrstuvwxyz', '[REDACTED]'],
];

describe('redact', () => {
  for (const [what, input, expected] of cases) {
    it(`hides a ${what}`, () => {
      const out = redact(input);
      assert.equal(out.text, expected);
      assert.ok(out.count >= 1);
    });
  }

  it('says a text may hold a secret wherever redact hides one, inside a longer value or not', () => {
    // EvidenceCollector stores a value as it is when mayHoldSecret says no: a miss here would put
    // a secret into the report.
    for (const [, input] of cases)
      for (const text of [input, `x ${input} y`, `https://example.com/?q=${input}`]) {
        assert.ok(redact(text).count >= 1, text);
        assert.equal(mayHoldSecret(text), true, text);
      }
    assert.equal(mayHoldSecret('http://radio.example.net/live/stream.mp3'), false);
  });

  it('leaves ordinary evidence alone and counts nothing', () => {
    for (const text of [
      'http://radio.example.net/live/stream.mp3',
      'GET /api/feeds/refresh?customer=4711 HTTP/1.1',
      'content-type: audio/mpeg',
      'PATH=/usr/bin:/bin',
      'File "feeds/fetch.py", line 42, in fetch_feed',
    ]) {
      assert.deepEqual(redact(text), { text, count: 0, secrets: [] });
    }
  });

  it('reports the secrets it hid, so unnamed copies can be hidden too', () => {
    const { secrets } = redact('DATABASE_PASSWORD=hunter2-s3cret');
    assert.deepEqual(secrets, ['hunter2-s3cret']);
    const known = new KnownSecrets();
    known.add(secrets);
    assert.deepEqual(known.scrub('EN=hunter2-s3cret and more'), {
      text: 'EN=[REDACTED] and more',
      count: 1,
      secrets: [],
    });
  });

  it('escapes regular-expression characters in known secrets', () => {
    const known = new KnownSecrets();
    known.add(['a+b(c)*[d]']);
    assert.equal(known.scrub('x a+b(c)*[d] y').text, 'x [REDACTED] y');
    assert.equal(known.scrub('aab(c)d').text, 'aab(c)d');
  });
});
