import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { Lz4FrameDecoder } from '../../src/analyze/lz4.ts';
import { CodedError } from '../../src/errors.ts';
import { requireTool } from '../helpers/reference-tools.ts';

function decode(bytes: Uint8Array, chunk: number): Buffer {
  const out: Uint8Array[] = [];
  const decoder = new Lz4FrameDecoder((c) => out.push(c));
  for (let at = 0; at < bytes.length; at += chunk) decoder.push(bytes.subarray(at, at + chunk));
  decoder.end();
  return Buffer.concat(out);
}

describe('Lz4FrameDecoder', () => {
  requireTool('lz4');
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-lz4-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // Compressible and incompressible stretches, repeats far and near: literals, matches, overlaps.
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    parts.push(Buffer.from(`GET /api/feeds/refresh?customer=${i} HTTP/1.1\r\n`.repeat(50)));
    parts.push(Buffer.alloc(3000 + i * 97, i));
    parts.push(Buffer.from(Array.from({ length: 5000 }, (_, k) => (k * 2654435761 + i) >>> 24)));
  }
  const input = Buffer.concat(parts);
  const source = join(dir, 'input');
  writeFileSync(source, input);
  const lz4 = (...args: string[]) =>
    execFileSync('lz4', ['-q', '-c', ...args, source], { maxBuffer: 64 << 20 });

  for (const args of [
    [],
    ['-B4'],
    ['-B4', '-BD'],
    ['-B5', '-BD', '--content-size'],
    ['-B6', '-BX'],
    ['-9', '-BD'],
    ['--no-frame-crc'],
  ]) {
    it(`decodes the real lz4 ${args.join(' ') || '(defaults)'}, in any chunking`, () => {
      const compressed = lz4(...args);
      for (const chunk of [1, 13, 4096, 1 << 20])
        assert.ok(decode(compressed, chunk).equals(input), `chunks of ${chunk}`);
    });
  }

  it('decodes frames one after another, skipping skippable frames', () => {
    const skippable = Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    const twice = Buffer.concat([lz4('-B4', '-BD'), skippable, lz4()]);
    assert.ok(decode(twice, 999).equals(Buffer.concat([input, input])));
  });

  it('gives what a cut frame still holds, and throws a coded error when it holds nothing', () => {
    const compressed = lz4('-B4', '-BD');
    const partial = decode(compressed.subarray(0, Math.floor(compressed.length / 2)), 4096);
    assert.ok(partial.length > 0 && partial.length < input.length);
    assert.ok(input.subarray(0, partial.length).equals(partial));
    assert.throws(
      () => decode(compressed.subarray(0, 6), 4096),
      (e) => e instanceof CodedError && e.code === 'nightshift_malformed_compression',
    );
  });

  it('never throws anything but a coded error, and stays fast, on mutated frames', () => {
    const compressed = lz4('-B4', '-BD');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: compressed.length - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 20,
        }),
        fc.nat({ max: compressed.length }),
        (flips, cut) => {
          const bytes = Buffer.from(compressed.subarray(0, cut));
          for (const [at, value] of flips) if (at < bytes.length) bytes[at] = value;
          const started = performance.now();
          try {
            decode(bytes, 997);
          } catch (error) {
            assert.ok(error instanceof CodedError, String(error));
          }
          assert.ok(performance.now() - started < 500, 'took too long');
        },
      ),
      { numRuns: 300 },
    );
  });
});
