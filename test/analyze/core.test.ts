import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { CoreStreamReader } from '../../src/analyze/core.ts';
import { DumpStreamAnalyzer } from '../../src/analyze/dump.ts';
import { parseElfHeader, parseProgramHeaders } from '../../src/analyze/elf.ts';
import { parseNotes } from '../../src/analyze/notes.ts';
import { CodedError } from '../../src/errors.ts';
import { makeCCore } from '../helpers/cores.ts';

/** Feeds bytes in chunks; anything thrown must be a CodedError, and it must not take long. */
function readMalformed(bytes: Uint8Array, chunk: number): void {
  const started = performance.now();
  const analyzer = new DumpStreamAnalyzer();
  try {
    for (let at = 0; at < bytes.length; at += chunk) analyzer.push(bytes.subarray(at, at + chunk));
    analyzer.finish();
  } catch (error) {
    assert.ok(error instanceof CodedError, `not a coded error: ${String(error)}`);
  }
  assert.ok(performance.now() - started < 2000, 'took more than 2 s');
}

describe('the ELF, notes and core readers on malformed input', () => {
  let dir: string;
  let core: Buffer;
  let notesEnd: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-fuzz-'));
    core = readFileSync((await makeCCore(dir, 'threads')).path);
    const header = parseElfHeader(core);
    const segments = parseProgramHeaders(core.subarray(header.phoff), header);
    notesEnd = Math.max(...segments.filter((s) => s.type === 4).map((s) => s.offset + s.filesz));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the unmutated core (the fuzzing starts from a valid one)', () => {
    const reader = new CoreStreamReader();
    reader.push(core);
    const facts = reader.finish();
    assert.equal(facts.threads, 4);
    assert.equal(facts.truncated, false);
    assert.equal(facts.notesIncomplete, false);
  });

  it('gives a coded error or a result, quickly, for mutated headers, program headers and notes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 1 << 16 }),
        (flips, chunk) => {
          const bytes = Buffer.from(core.subarray(0, notesEnd + 8192));
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          readMalformed(bytes, chunk);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('gives a coded error or a result for a core cut at any point', () => {
    fc.assert(
      fc.property(fc.nat({ max: notesEnd + 65536 }), (cut) => readMalformed(core.subarray(0, cut), 4096)),
      { numRuns: 200 },
    );
  });

  it('survives notes made of random bytes, and lengths that point past the end', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
        const notes = parseNotes(bytes, 'x86_64');
        assert.ok(notes.threads.length <= bytes.length / 12);
      }),
      { numRuns: 500 },
    );
    const huge = new Uint8Array(24);
    new DataView(huge.buffer).setUint32(4, 0xffffffff, true);
    assert.equal(parseNotes(huge, 'aarch64').incomplete, true);
  });

  it('keeps at most 64 MiB of notes however many huge note segments a header declares', () => {
    const phnum = 1000;
    const bytes = Buffer.alloc(64 + phnum * 56);
    bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
    bytes.writeUInt16LE(4, 16); // ET_CORE
    bytes.writeUInt16LE(62, 18); // x86_64
    bytes.writeBigUInt64LE(64n, 32); // e_phoff
    bytes.writeUInt16LE(56, 54);
    bytes.writeUInt16LE(phnum, 56);
    for (let i = 0; i < phnum; i++) {
      bytes.writeUInt32LE(4, 64 + i * 56); // PT_NOTE
      bytes.writeBigUInt64LE(1n << 40n, 64 + i * 56 + 32); // a terabyte each
    }
    const before = process.memoryUsage().arrayBuffers;
    const reader = new CoreStreamReader();
    reader.push(bytes);
    assert.ok(process.memoryUsage().arrayBuffers - before <= 65 * 1024 * 1024);
    assert.equal(reader.finish().truncated, true);
  });

  it('gives a coded error for random bytes behind an ELF magic', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 8192 }), (tail) => {
        readMalformed(Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), tail]), 512);
      }),
      { numRuns: 300 },
    );
  });
});
