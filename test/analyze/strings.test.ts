import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { mayHoldEvidence } from '../../src/analyze/extract.ts';
import { MIN_ASCII, MIN_UTF16, type StringEncoding, StringScanner } from '../../src/analyze/strings.ts';

type Found = [offset: number, encoding: StringEncoding, text: string];

const isPrint = (c: number) => c >= 0x20 && c < 0x7f;

/**
 * The slow, obvious definition the scanner must agree with: maximal printable runs of at least
 * MIN_ASCII bytes, and maximal runs of at least MIN_UTF16 (printable, NUL) pairs.
 */
function reference(bytes: Uint8Array): Found[] {
  const out: Found[] = [];
  let i = 0;
  while (i < bytes.length) {
    if (!isPrint(bytes[i]!)) {
      i++;
      continue;
    }
    let e = i;
    while (e < bytes.length && isPrint(bytes[e]!)) e++;
    if (e - i >= MIN_ASCII) out.push([i, 'ascii', Buffer.from(bytes.subarray(i, e)).toString('latin1')]);
    i = e;
  }
  for (const parity of [0, 1]) {
    let p = parity;
    while (p + 1 < bytes.length) {
      if (!(isPrint(bytes[p]!) && bytes[p + 1] === 0)) {
        p += 2;
        continue;
      }
      let e = p;
      while (e + 1 < bytes.length && isPrint(bytes[e]!) && bytes[e + 1] === 0) e += 2;
      if ((e - p) / 2 >= MIN_UTF16) {
        let text = '';
        for (let k = p; k < e; k += 2) text += String.fromCharCode(bytes[k]!);
        out.push([p, 'utf16le', text]);
      }
      p = e;
    }
  }
  return out.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
}

type Engine = 'wasm' | 'js';

function scan(bytes: Uint8Array, cuts: number[], engine: Engine = 'wasm', skipPlain = false): Found[] {
  const out: Found[] = [];
  const scanner = new StringScanner((text, offset, encoding) => out.push([offset, encoding, text]), {
    engine,
    skipPlain,
  });
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length)]
    .sort((a, b) => a - b)
    .concat(bytes.length)) {
    if (cut <= at) continue;
    // Copy each chunk into a buffer of its own at an arbitrary alignment, then reuse it, as a reader does.
    const misalign = cut % 3;
    const storage = new Uint8Array(cut - at + misalign);
    const chunk = storage.subarray(misalign);
    chunk.set(bytes.subarray(at, cut));
    scanner.push(chunk);
    storage.fill(0xff);
    at = cut;
  }
  scanner.flush();
  return out.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
}

/** Bytes that are mostly binary with text, UTF-16 text and near-misses planted in them. */
const memory = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 40 }),
      fc.string({ minLength: 1, maxLength: 40 }).map((s) => new Uint8Array(Buffer.from(s, 'latin1'))),
      fc
        .constantFrom(
          'http://radio.example.net/live/stream.mp3',
          'GET /x HTTP/1.1',
          'short',
          'a\tb\tc\td\te\tf',
          'LANG=C.UTF-8',
          'SSL_CERT_2=/etc/ssl',
          'SSL-CERT=/etc/ssl',
          'lang=C.UTF-8 Exit',
          'ValueError: bad',
          'SELECT 1 FROM t',
          'DELET ontent icy',
          '"profile":',
        )
        .map((s) => new Uint8Array(Buffer.from(s, 'latin1'))),
      fc
        .constantFrom('http://radio.example.net/live', 'Error in feed', 'PATH_2=/usr/bin', 'plain words')
        .map((s) => new Uint8Array(Buffer.from(s, 'utf16le'))),
      fc
        .string({ minLength: 1, maxLength: 20 })
        .map((s) => new Uint8Array(Buffer.from(s.replace(/[^ -~]/g, 'x'), 'utf16le'))),
      fc.constantFrom(new Uint8Array(8), new Uint8Array([0, 0, 0])),
    ),
    { maxLength: 30 },
  )
  .map((parts) => {
    const total = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  });

describe('StringScanner', () => {
  it('has the WebAssembly engine here (a missing one would silently fall back to the slower loop)', () => {
    assert.ok(new StringScanner(() => {}).inputArea, 'strings.wasm did not load');
  });

  for (const engine of ['wasm', 'js'] as const) {
    it(`finds what the obvious definition finds, however the bytes are chunked (${engine})`, () => {
      fc.assert(
        fc.property(memory, fc.array(fc.nat({ max: 1200 }), { maxLength: 12 }), (bytes, cuts) => {
          assert.deepEqual(scan(bytes, cuts, engine), reference(bytes));
        }),
        { numRuns: 1500 },
      );
    });
  }

  for (const engine of ['wasm', 'js'] as const) {
    it(`with skipPlain, leaves out exactly the strings mayHoldEvidence says no to (${engine})`, () => {
      fc.assert(
        fc.property(memory, fc.array(fc.nat({ max: 1200 }), { maxLength: 6 }), (bytes, cuts) => {
          const all = reference(bytes);
          const found = scan(bytes, cuts, engine, true);
          const key = (f: Found) => f.join('\u0000');
          const foundKeys = new Set(found.map(key));
          for (const f of all) if (mayHoldEvidence(f[2])) assert.ok(foundKeys.has(key(f)), `missing ${f[2]}`);
          const allKeys = new Set(all.map(key));
          for (const f of found) assert.ok(allKeys.has(key(f)), `unexpected ${f[2]}`);
          // And exactly those: what is left out does not depend on where chunks were cut.
          assert.deepEqual(
            found,
            all.filter((f) => mayHoldEvidence(f[2])),
          );
        }),
        { numRuns: 1000 },
      );
    });
  }

  it('agrees with the definition on large random chunks with planted text (wasm and js)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 70_000, maxLength: 140_000 }),
        memory,
        fc.nat(),
        (noise, text, at) => {
          const bytes = new Uint8Array(noise);
          bytes.set(text.subarray(0, bytes.length), at % Math.max(1, bytes.length - text.length));
          const expected = reference(bytes);
          assert.deepEqual(scan(bytes, [65_536], 'wasm'), expected);
          assert.deepEqual(scan(bytes, [65_536], 'js'), expected);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('finds the shortest runs at every position across 64-byte blocks, after blocks with none', () => {
    // The SIMD loop skips whole blocks that end no run and carries the last bytes of each into the
    // next; runs of exactly the minimum length, ending at each byte of a block, test those carries.
    const filler = (n: number) => Uint8Array.from({ length: n }, (_, i) => 0x80 + ((i * 37) % 128));
    const runs: Array<[string, Uint8Array]> = [
      ['ascii 8', new Uint8Array(Buffer.from('abcdefgh', 'latin1'))],
      ['ascii 9', new Uint8Array(Buffer.from('abcdefghi', 'latin1'))],
      ['utf16 6', new Uint8Array(Buffer.from('abcdef', 'utf16le'))],
      ['utf16 7', new Uint8Array(Buffer.from('abcdefg', 'utf16le'))],
      ['ascii 7, too short', new Uint8Array(Buffer.from('abcdefg', 'latin1'))],
      ['utf16 5, too short', new Uint8Array(Buffer.from('abcde', 'utf16le'))],
    ];
    for (const [name, run] of runs) {
      for (let at = 190; at < 330; at++) {
        const bytes = filler(512);
        bytes.set(run, at);
        const expected = reference(bytes);
        assert.equal(expected.length, name.includes('too short') ? 0 : 1, `${name} at ${at}`);
        assert.deepEqual(scan(bytes, []), expected, `${name} at ${at} (wasm)`);
        assert.deepEqual(scan(bytes, [], 'js'), expected, `${name} at ${at} (js)`);
      }
    }
  });

  it('keeps a URL whole when a chunk boundary falls inside it, for every boundary position', () => {
    const url = 'https://auth.example.com/oauth2/token?grant_type=client_credentials&scope=read';
    const bytes = new Uint8Array(200).fill(0x01);
    bytes.set(Buffer.from(url, 'latin1'), 61);
    for (let cut = 1; cut < bytes.length; cut++) {
      const found = scan(bytes, [cut]);
      assert.deepEqual(found, [[61, 'ascii', url]], `cut at ${cut}`);
    }
  });

  it('reports offsets relative to where scanning started', () => {
    const out: Found[] = [];
    const scanner = new StringScanner((text, offset, encoding) => out.push([offset, encoding, text]));
    scanner.seek(1000);
    scanner.push(new Uint8Array(Buffer.from('\u0000\u0000hello world\u0000', 'latin1')));
    scanner.flush();
    assert.deepEqual(out, [[1002, 'ascii', 'hello world']]);
  });

  it('says which run is still open at the end of a chunk', () => {
    const scanner = new StringScanner(() => {});
    scanner.push(new Uint8Array(Buffer.from('\u0000\u0000\u0000\u0000abcdefgh', 'latin1')));
    assert.equal(scanner.openRunStart, 4);
    scanner.push(new Uint8Array([0]));
    assert.equal(scanner.openRunStart, 11, 'the last "h" and this NUL may begin a UTF-16 string');
    scanner.push(new Uint8Array([1]));
    assert.equal(scanner.openRunStart, undefined);
  });
});
