import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type EvidenceKind,
  extractEvidence,
  mayHoldEvidence,
  triggerMask,
} from '../../src/analyze/extract.ts';
import { StringScanner } from '../../src/analyze/strings.ts';

function extract(text: string): Array<[EvidenceKind, string]> {
  const out: Array<[EvidenceKind, string]> = [];
  extractEvidence(text, 'ascii', (kind, value) => out.push([kind, value]));
  return out;
}

const printable = fc.string({
  unit: fc.constantFrom(...Array.from({ length: 95 }, (_, i) => String.fromCharCode(0x20 + i))),
});
// Whole pieces of evidence, and the same cut or bent so they no longer hold a trigger.
const pieces = fc.constantFrom(
  'http://radio.example.net/live',
  'http:/radio.example.net/live',
  'GET /live HTTP/1.1',
  'GET /live HTTP1.1',
  'Content-Type: audio/mpeg',
  'Content-Type audio/mpeg',
  'icy-name: Radio',
  'Traceback (most recent call last)',
  'File "/app/feed.py", line 12, in read',
  'File /app/feed.py, line 12',
  'ValueError: bad feed',
  'KeyboardInterrupt: stop',
  'SystemExit: 1',
  'LANG=C.UTF-8',
  'lang=C.UTF-8',
  'AWS_2FA=on',
  'AWS-2FA=on',
  '"transaction": "/feeds/"',
  '"release": "web@1.2"',
  '"environment": "prod"',
  '"function": "read_feed"',
  '{"event_id":"abc","sent_at":"now"}',
  '{"profile":{"frames":[]}}',
  'SELECT id FROM feeds WHERE 1',
  'INSERT INTO feeds ',
  'UPDATE feeds SET x',
  'DELETE FROM feeds ',
);

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

  it('finds nothing in a string mayHoldEvidence says no to (the scanner skips those)', () => {
    let skipped = 0;
    let found = 0;
    fc.assert(
      fc.property(fc.array(fc.oneof(printable, pieces), { maxLength: 6 }), (parts) => {
        const text = parts.join('');
        const evidence = extract(text);
        if (evidence.length > 0) found++;
        if (!mayHoldEvidence(text)) {
          skipped++;
          assert.deepEqual(evidence, [], text);
        }
      }),
      { numRuns: 3000 },
    );
    // Neither side of the property may be empty, or it would prove nothing.
    assert.ok(skipped > 300 && found > 300, `skipped ${skipped}, found evidence in ${found}`);
  });

  it('finds the same with the triggers the WebAssembly scanner saw as when it looks for them itself', () => {
    let told = 0;
    fc.assert(
      fc.property(
        fc.array(fc.oneof(printable, pieces), { minLength: 1, maxLength: 6 }),
        printable,
        (parts, after) => {
          const text = parts.join('');
          // As ASCII and as UTF-16LE, between NULs, as a core holds them; in ASCII another string
          // follows one byte on, so a trigger just past a string's end must not count in it.
          const bytes = Buffer.concat([
            Buffer.from(`\0${text}\u0001${after}http://x.example/\0`, 'latin1'),
            Buffer.from(`\0${text}\0`, 'utf16le'),
            Buffer.alloc(64),
          ]);
          const seen: Array<[string, number | undefined]> = [];
          const scanner = new StringScanner((t, _offset, _encoding, triggers) => seen.push([t, triggers]), {
            skipPlain: true,
          });
          scanner.push(bytes);
          scanner.flush();
          for (const [t, triggers] of seen) {
            if (triggers === undefined) continue;
            told++;
            // Exactly the triggers JavaScript finds: strings.c looks them up by their first two bytes,
            // and one at the very end of a string (a piece last) has no byte after its first.
            assert.equal(triggers, triggerMask(t), t);
            const withTriggers: Array<[EvidenceKind, string]> = [];
            extractEvidence(t, 'ascii', (kind, value) => withTriggers.push([kind, value]), triggers);
            assert.deepEqual(withTriggers, extract(t), t);
          }
        },
      ),
      { numRuns: 2000 },
    );
    assert.ok(told > 1000, `the scanner told the triggers of ${told} strings`);
  });

  it('ignores ordinary text', () => {
    assert.deepEqual(extract('the quick brown fox jumps over the lazy dog'), []);
  });
});
