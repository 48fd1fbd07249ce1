import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ZstdFrameWalker } from '../../src/collect/zstd-frames.ts';
import { requireTool } from '../helpers/reference-tools.ts';

/** Streams made by the real zstd tool, walked in chunks of every size that matters. */

const work = mkdtempSync(join(tmpdir(), 'nightshift-zstd-frames-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Text that compresses like a heap's (log lines, URLs, JSON), with a stretch of zeros (RLE blocks). */
function heapText(bytes: number): Buffer {
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const line =
      i % 97 === 0
        ? '\0'.repeat(200_000)
        : `{"ts":${1764750000 + i},"url":"https://feeds.example.com/u/${(i * 7919) % 100_003}/rss?page=${i % 13}","status":${200 + (i % 5)}}\n`;
    parts.push(line);
    n += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

function zstd(input: Buffer, args: string[]): Buffer {
  requireTool('zstd');
  return execFileSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 1 << 30 });
}

function walk(stream: Buffer, chunk: number): ZstdFrameWalker {
  const walker = new ZstdFrameWalker();
  for (let at = 0; at < stream.length; at += chunk) walker.push(stream.subarray(at, at + chunk));
  return walker;
}

describe('following a zstd stream without decoding it', () => {
  const text = heapText(3 * 1024 * 1024 + 12_345);

  it('says a stream from the zstd tool is whole, and counts its content to within a block a frame', () => {
    for (const args of [['-1'], ['-1', '--no-check'], ['-19'], ['--fast=3']]) {
      const stream = zstd(text, args);
      for (const chunk of [1, 3, 4096, 1 << 20, stream.length]) {
        const walker = walk(stream, chunk);
        assert.equal(walker.whole, true, `${args.join(' ')} in chunks of ${chunk}`);
        assert.equal(walker.frames, 1);
        assert.ok(walker.approxContentBytes >= text.length, `${walker.approxContentBytes} < ${text.length}`);
        assert.ok(walker.approxContentBytes <= text.length + 128 * 1024, String(walker.approxContentBytes));
      }
    }
  });

  it('follows several frames, a skippable frame between them, and a single-segment frame with its size', () => {
    // zstd on a named small file knows its size: a single-segment frame stating it.
    const small = join(work, 'small.txt');
    writeFileSync(small, text.subarray(0, 5000));
    requireTool('zstd');
    const single = execFileSync('zstd', ['-q', '-c', small]);
    assert.equal(single[4]! & 0x20, 0x20, 'the tool wrote a single-segment frame');
    const skippable = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
    const stream = Buffer.concat([zstd(text, ['-1']), skippable, single, zstd(Buffer.alloc(0), ['-1'])]);
    for (const chunk of [1, 7, 65_536]) {
      const walker = walk(stream, chunk);
      assert.equal(walker.whole, true);
      assert.equal(walker.frames, 3);
      assert.ok(walker.approxContentBytes >= text.length + 5000);
    }
  });

  it('says a stream cut anywhere is not whole', () => {
    const stream = zstd(text.subarray(0, 400_000), ['-1']);
    const cuts = new Set([1, 4, 5, 6, 8, 9, 100, stream.length - 5, stream.length - 4, stream.length - 1]);
    for (let at = 0; at < stream.length; at += 997) cuts.add(at);
    for (const cut of cuts) {
      if (cut <= 0) continue;
      assert.equal(walk(stream.subarray(0, cut), 4096).whole, false, `cut at ${cut} of ${stream.length}`);
    }
    assert.equal(walk(stream, 4096).whole, true);
  });

  it('refuses what is not a zstd stream, and stays refused', () => {
    const walker = new ZstdFrameWalker();
    assert.throws(
      () => walker.push(Buffer.from('\x1f\x8b\x08\x00 gzip, not zstd')),
      /not a whole zstd stream/,
    );
    assert.throws(() => walker.push(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), /not a whole zstd stream/);
    assert.equal(walker.whole, false);
    // A frame header with its reserved bit set; a block of the reserved type.
    assert.throws(() => walk(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x08, 0x58]), 1), /reserved bit/);
    const stream = zstd(text.subarray(0, 10_000), ['-1', '--no-check']);
    const headerEnd = 6; // magic, descriptor, window
    const bad = Buffer.from(stream);
    bad[headerEnd] = bad[headerEnd]! | 0x06;
    assert.throws(() => walk(bad, 4096), /reserved block type/);
  });
});
