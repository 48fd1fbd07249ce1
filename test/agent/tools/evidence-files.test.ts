import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import {
  needlesFor,
  printable16,
  readRange,
  scanFile,
  strings16In,
  stringsIn,
} from '../../../src/agent/tools/evidence-files.ts';
import { stringsAround } from '../../../src/agent/tools/strings-around.ts';
import { callTool, type ToolContext } from '../../../src/agent/tools/tool.ts';
import { KnownSecrets } from '../../../src/analyze/redact.ts';

/**
 * The byte search under search_evidence and strings_around: several needles at once (the
 * pattern as UTF-8 and as UTF-16LE), in file order, each match once even where it straddles a
 * read of 1 MiB or lies wholly in the tail carried from one read to the next.
 */

const MIB = 1 << 20;

describe('scanFile', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-scan-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Every offset of each needle, by indexOf over the whole buffer: the reference. */
  function reference(bytes: Buffer, needles: Buffer[]): Array<[number, number]> {
    const all: Array<[number, number]> = [];
    for (const [which, needle] of needles.entries())
      for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) all.push([at, which]);
    return all.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  }

  /**
   * 3 MiB and a bit with the needle in both encodings: straddling the first 1 MiB boundary
   * (UTF-16, 18 bytes), wholly inside the tail carried past the second (ASCII, 9 bytes, shorter
   * than the UTF-16 needle that sets the tail's length), and right at the start and end.
   */
  function planted(): { needles: [Buffer, Buffer]; bytes: Buffer } {
    const [ascii, wide] = needlesFor('radio.mp3').map((n) => n.bytes) as [Buffer, Buffer];
    const bytes = Buffer.alloc(3 * MIB + 100, 0x2e);
    wide.copy(bytes, MIB - 7);
    ascii.copy(bytes, 2 * MIB - 12);
    ascii.copy(bytes, 0);
    wide.copy(bytes, bytes.length - wide.length);
    ascii.copy(bytes, 1234);
    return { needles: [ascii, wide], bytes };
  }

  /** Every match scanFile reports, and the bytes it read. */
  async function scanAll(
    file: string,
    needles: Buffer[],
  ): Promise<{ read: number; seen: Array<[number, number]> }> {
    const seen: Array<[number, number]> = [];
    const read = await scanFile(file, needles, 10 * MIB, (offset, which) => {
      seen.push([offset, which]);
      return true;
    });
    return { read, seen };
  }

  it('finds both encodings across read boundaries, each once, in file order', async () => {
    const { needles, bytes } = planted();
    const file = join(dir, 'core');
    writeFileSync(file, bytes);
    const { read, seen } = await scanAll(file, needles);
    assert.equal(read, bytes.length);
    assert.deepEqual(seen, reference(bytes, needles));
    assert.equal(seen.length, 5);
  });

  it('reads a file kept compressed (a pull kept as zstd, a gzip core) at the offsets of its content', async () => {
    const { needles, bytes } = planted();
    for (const [name, packed] of [
      ['core.tar.zst', zstdCompressSync(bytes)],
      ['core.gz', gzipSync(bytes)],
    ] as const) {
      const file = join(dir, name);
      writeFileSync(file, packed);
      const { read, seen } = await scanAll(file, needles);
      assert.equal(read, bytes.length, name);
      assert.deepEqual(seen, reference(bytes, needles), name);
      assert.deepEqual(await readRange(file, 2 * MIB - 20, 30), bytes.subarray(2 * MIB - 20, 2 * MIB + 10));
      assert.deepEqual(await readRange(file, bytes.length - 5, 30), bytes.subarray(bytes.length - 5));
    }
  });

  it('stops when told to, and at maxBytes', async () => {
    const needle = Buffer.from('NEEDLE');
    const file = join(dir, 'many');
    writeFileSync(file, Buffer.from('..NEEDLE..'.repeat(1000)));
    let n = 0;
    await scanFile(file, [needle], 1 << 30, () => ++n < 3);
    assert.equal(n, 3);
    const offsets: number[] = [];
    const read = await scanFile(file, [needle], 25, (offset) => offsets.push(offset) > 0);
    assert.equal(read, 25);
    assert.deepEqual(offsets, [2, 12]);
  });
});

describe('wide strings', () => {
  it('reads UTF-16LE runs at either parity, with their offsets', () => {
    const bytes = Buffer.concat([
      Buffer.from([7]),
      Buffer.from('icy-name', 'utf16le'),
      Buffer.from([0xff, 0xff]),
      Buffer.from('short', 'utf16le'),
      Buffer.from('ascii text here'),
    ]);
    assert.deepEqual(strings16In(bytes, 100, 6), [{ offset: 101, text: 'icy-name' }]);
    assert.deepEqual(
      stringsIn(bytes, 100, 6).map((s) => s.text),
      ['ascii text here'],
    );
    assert.equal(printable16(bytes, 1).slice(0, 9), 'icy-name.');
  });
});

describe('strings_around', () => {
  it('finds a value kept as UTF-16LE and lists the wide and narrow strings near it', async () => {
    const evidenceDir = mkdtempSync(join(tmpdir(), 'nightshift-around-'));
    try {
      const dir = join(evidenceDir, 'incident-3');
      mkdirSync(dir, { recursive: true });
      const core = Buffer.concat([
        Buffer.alloc(100),
        Buffer.from('GET /live/radio.mp3 HTTP/1.1'),
        Buffer.alloc(9),
        Buffer.from('http://radio.example/live/radio.mp3', 'utf16le'),
        Buffer.alloc(50),
      ]);
      writeFileSync(join(dir, 'core.1'), core);
      // The same core as a pull keeps it where the host has zstd: the offsets are the content's.
      writeFileSync(join(dir, 'core.2.zst'), zstdCompressSync(core));
      const ctx = { evidenceDir, incidentId: 3, knownSecrets: new KnownSecrets() } as unknown as ToolContext;
      for (const file of ['core.1', 'core.2.zst']) {
        const call = await callTool(
          [stringsAround],
          {
            type: 'tool_use',
            id: 'toolu_1',
            name: 'strings_around',
            input: { file, value: 'radio.example', radius: 64 },
          },
          ctx,
        );
        const shown = JSON.stringify(call.result.content);
        assert.equal(call.result.is_error, undefined, shown);
        // The wide URL starts at 137 (100 + 28 + 9); "radio.example" is 7 characters in, at 151.
        assert.match(shown, new RegExp(`at ${file.replace(/\./g, '\\.')} @ 151:`));
        assert.match(shown, /137 \* \(UTF-16LE\): http:\/\/radio\.example\/live\/radio\.mp3/);
        assert.match(shown, /100: GET \/live\/radio\.mp3 HTTP\/1\.1/);
      }
    } finally {
      rmSync(evidenceDir, { recursive: true, force: true });
    }
  });
});
