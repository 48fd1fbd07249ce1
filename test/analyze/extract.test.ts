import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type EvidenceKind, extractEvidence } from '../../src/analyze/extract.ts';

function extract(text: string): Array<[EvidenceKind, string]> {
  const out: Array<[EvidenceKind, string]> = [];
  extractEvidence(text, 'ascii', (kind, value) => out.push([kind, value]));
  return out;
}

describe('extractEvidence', () => {
  it('finds URLs and stops at quotes', () => {
    assert.deepEqual(
      extract(`{"url": "http://radio.example.net/live/stream.mp3", 'x': 'https://a.example/b?c=1'}`),
      [
        ['url', 'http://radio.example.net/live/stream.mp3'],
        ['url', 'https://a.example/b?c=1'],
      ],
    );
  });

  it('finds other schemes, such as DSNs and stream protocols', () => {
    assert.deepEqual(extract('connect postgres://app@db:5432/app then icy://radio.example/x'), [
      ['url', 'postgres://app@db:5432/app'],
      ['url', 'icy://radio.example/x'],
    ]);
  });

  it('finds HTTP request lines with their query strings', () => {
    assert.deepEqual(extract('GET /api/feeds/refresh?customer=4711 HTTP/1.1'), [
      ['request', 'GET /api/feeds/refresh?customer=4711'],
    ]);
  });

  it('finds Content-Type and icy-* headers, raw or as Python reprs', () => {
    assert.deepEqual(extract('Content-Type: audio/mpeg'), [['header', 'content-type: audio/mpeg']]);
    assert.deepEqual(extract("('icy-name', 'Nightshift Test Radio')"), [
      ['header', 'icy-name: Nightshift Test Radio'],
    ]);
  });

  it('finds Python traceback frames and exception lines', () => {
    assert.deepEqual(extract('  File "/srv/app/feeds/fetch.py", line 42, in fetch_feed'), [
      ['frame', '/srv/app/feeds/fetch.py:42 in fetch_feed'],
    ]);
    assert.deepEqual(extract('TimeoutError: the read operation timed out'), [
      ['exception', 'TimeoutError: the read operation timed out'],
    ]);
    assert.deepEqual(extract('Traceback (most recent call last):'), [
      ['traceback', 'Traceback (most recent call last)'],
    ]);
  });

  it('finds Sentry and profiling fields', () => {
    const payload =
      '{"type": "transaction", "transaction": "/api/feeds/refresh", "release": "webapp@2026.11.3", "environment": "production", "profile": {"frames": [{"function": "fetch_feed"}]}}';
    assert.deepEqual(extract(payload), [
      ['transaction', '/api/feeds/refresh'],
      ['release', 'webapp@2026.11.3'],
      ['environment', 'production'],
      ['function', 'fetch_feed'],
      ['payload', 'profiling payload'],
    ]);
  });

  it('finds SQL statements', () => {
    assert.deepEqual(extract('SELECT id, url FROM feeds WHERE customer_id = 4711; COMMIT'), [
      ['sql', 'SELECT id, url FROM feeds WHERE customer_id = 4711'],
    ]);
    assert.deepEqual(extract('please select a file from the list'), []);
  });

  it('finds environment variables', () => {
    assert.deepEqual(extract('LANG=C.UTF-8'), [['env', 'LANG=C.UTF-8']]);
  });

  it('finds nothing in a string without one of EVIDENCE_MARKS (the scanner skips those)', () => {
    const noMarks = fc.string({
      unit: fc.constantFrom(
        ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-?&#@!$()*+;<>[]{}|~^%`\\',
      ),
    });
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            noMarks,
            fc.constantFrom(
              'http',
              'SELECT',
              'Error',
              'HTTP/1.1',
              'File',
              'icy-',
              'Content-Type',
              'transaction',
              'event_id',
              'profile',
              'frames',
            ),
          ),
        ),
        (parts) => {
          assert.deepEqual(extract(parts.join('')), []);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('ignores ordinary text', () => {
    assert.deepEqual(extract('the quick brown fox jumps over the lazy dog'), []);
  });
});
