import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import fc from 'fast-check';
import { buildReport } from '../../src/analyze/correlate.ts';
import { parseElfHeader, parseProgramHeaders } from '../../src/analyze/elf.ts';
import { ReportSchema } from '../../src/analyze/report-schema.ts';
import { systemClock } from '../../src/clock.ts';
import { CodedError, ErrorCode } from '../../src/errors.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { readDumpStream } from '../../src/evidence/read-stream.ts';
import { type CCore, makeCCore } from '../helpers/cores.ts';
import { BLOCK, FIELD, paxMember, tarEnd, tarHeader, tarMember, withChecksum } from '../helpers/tar-bytes.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const CODES = new Set<string>(Object.values(ErrorCode));
const memory = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
/**
 * What one analysis may hold at its peak whatever the input: 64 MiB of notes and 16 MiB of stack
 * (the caps in core.ts), read and inflate buffers, and the evidence of a 450 KiB core.
 */
const PEAK_LIMIT = 160 << 20;

describe('readDumpStream on a real core in hand-built tars', () => {
  let dir: string;
  let abort: CCore;
  let core: Buffer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-read-stream-'));
    abort = await makeCCore(join(dir, 'abort'), 'abort');
    core = readFileSync(abort.path);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reports every core of a tar whose members carry mtimes no Date can hold, with the tar file time', async () => {
    const tar = join(dir, 'bad-mtimes.tar');
    writeFileSync(
      tar,
      Buffer.concat([
        tarMember('core.base256', core, { mtime: 2n ** 50n }),
        paxMember({ mtime: '99999999999999999999' }),
        tarMember('core.pax', core),
        tarMember('core.good', core, { mtime: 1_764_547_200 }),
        tarEnd(),
      ]),
    );
    const report = await analyzeFiles([tar], { now: systemClock, workers: 0 });
    ReportSchema.parse(report);
    assert.deepEqual(report.errors, []);
    const fileTime = statSync(tar).mtime.toISOString();
    assert.deepEqual(
      report.dumps.map((d) => [d.entry, d.mtime, d.pid]),
      [
        ['core.base256', fileTime, abort.pid],
        ['core.pax', fileTime, abort.pid],
        ['core.good', '2025-12-01T00:00:00.000Z', abort.pid],
      ],
    );
  });
  it('sniffs each member: analyses a gzipped core, names what the others are', async () => {
    const tar = join(dir, 'mixed.tar');
    const gz = gzipSync(core, { level: 1 });
    writeFileSync(
      tar,
      Buffer.concat([
        tarMember('crash/core.1', core),
        tarMember('crash/core.2.gz', gz),
        tarMember('crash/core.3.gz', gz.subarray(0, Math.floor(gz.length / 2))),
        tarMember('crash/README.txt', Buffer.from('cores land here\n')),
        tarMember('crash/notes.txt.gz', gzipSync('just some text\n')),
        tarMember('crash/core.4.zst', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3])),
        tarMember('crash/empty', Buffer.alloc(0)),
        tarMember('crash/inner.tar', Buffer.concat([tarMember('core', Buffer.from('x')), tarEnd()])),
        tarEnd(),
      ]),
    );
    for (const form of ['tar', 'tar+gzip'] as const) {
      const file = form === 'tar' ? tar : `${tar}.gz`;
      if (form === 'tar+gzip') writeFileSync(file, gzipSync(readFileSync(tar)));
      const report = await analyzeFiles([file], { now: systemClock, workers: 0 });
      ReportSchema.parse(report);
      assert.deepEqual(
        report.dumps.map((d) => [d.entry, d.container, d.pid, d.sizeBytes, d.truncated]),
        [
          ['crash/core.1', form, abort.pid, core.length, false],
          ['crash/core.2.gz', form, abort.pid, core.length, false],
          ['crash/core.3.gz', form, abort.pid, report.dumps[2]!.sizeBytes, true],
        ],
        form,
      );
      assert.ok(report.dumps[2]!.sizeBytes < core.length);
      assert.deepEqual(
        report.errors.map((e) => [e.entry, e.code, e.message]),
        [
          ['crash/README.txt', 'nightshift_not_core', 'not a core dump: a text file'],
          ['crash/notes.txt.gz', 'nightshift_not_core', 'not a core dump: a gzip of a text file'],
          // Decompressed now, so bytes that only start like zstd are corrupt zstd.
          [
            'crash/core.4.zst',
            'nightshift_malformed_compression',
            'zstd data is corrupt: Dictionary mismatch',
          ],
          ['crash/empty', 'nightshift_not_core', 'not a core dump: an empty file'],
          [
            'crash/inner.tar',
            'nightshift_not_core',
            'not a core dump: a tar archive inside the tar (extract it first)',
          ],
        ],
        form,
      );
    }
  });
  it('gives a result or a coded error, quickly and in bounded memory, for mutated cores in every stream form', async () => {
    const header = parseElfHeader(core);
    const segments = parseProgramHeaders(core.subarray(header.phoff), header);
    const notesEnd = Math.max(...segments.filter((s) => s.type === 4).map((s) => s.offset + s.filesz));
    const fuzzFile = join(dir, 'fuzz');
    const flip = fc.tuple(
      // Mostly the ELF header, program headers and notes, where the parsers are; some anywhere.
      fc.oneof(
        { weight: 4, arbitrary: fc.nat({ max: notesEnd + 4096 }) },
        { weight: 1, arbitrary: fc.nat({ max: core.length - 1 }) },
      ),
      fc.integer({ min: 0, max: 255 }),
    );
    const tarField = fc.record({
      field: fc.constantFrom('size', 'mtime', 'typeflag', 'name') as fc.Arbitrary<keyof typeof FIELD>,
      bytes: fc.uint8Array({ minLength: 12, maxLength: 12 }),
      base256: fc.boolean(),
    });
    const input = fc.record({
      form: fc.constantFrom('gzip', 'zstd', 'tar', 'tar+gzip', 'tar+zstd'),
      flips: fc.array(flip, { minLength: 1, maxLength: 24 }),
      cut: fc.option(fc.nat({ max: core.length }), { freq: 3 }),
      tarFields: fc.array(tarField, { maxLength: 2 }),
      // Flips in the compressed bytes: corrupt gzip or zstd, after the first 10 bytes of header.
      gzipFlips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
    });
    gc();
    const baseline = memory();
    let results = 0;
    let codedOnly = 0;
    await fc.assert(
      fc.asyncProperty(input, async ({ form, flips, cut, tarFields, gzipFlips }) => {
        let bytes: Buffer = Buffer.from(core.subarray(0, cut ?? core.length));
        for (const [at, value] of flips) if (at < bytes.length) bytes[at] = value;
        if (form !== 'gzip' && form !== 'zstd') {
          const head = tarHeader({ name: 'core.1', size: bytes.length });
          for (const m of tarFields) {
            const [start, length] = FIELD[m.field];
            head.set(m.bytes.subarray(0, length), start);
            if (m.base256) head[start] = head[start]! | 0x80;
          }
          withChecksum(head);
          const pad = Buffer.alloc((BLOCK - (bytes.length % BLOCK)) % BLOCK);
          bytes = Buffer.concat([head, bytes, pad, tarEnd()]);
        }
        if (form !== 'tar') {
          bytes = form.endsWith('zstd') ? zstdCompressSync(bytes) : gzipSync(bytes, { level: 1 });
          for (const [at, value] of gzipFlips) bytes[10 + (at % (bytes.length - 10))] = value;
        }
        writeFileSync(fuzzFile, bytes);
        let peak = 0;
        const sampler = setInterval(() => {
          peak = Math.max(peak, memory() - baseline);
        }, 2);
        const started = performance.now();
        try {
          const result = await readDumpStream(fuzzFile);
          for (const e of result.errors) assert.ok(CODES.has(e.code), `unknown code ${e.code}`);
          // Whatever came out must make a report.
          ReportSchema.parse(buildReport(result.dumps, result.errors, new Date()));
          if (result.dumps.length > 0) results++;
          else codedOnly++;
        } catch (error) {
          assert.ok(error instanceof CodedError, `not a coded error: ${String(error)}`);
          codedOnly++;
        } finally {
          clearInterval(sampler);
        }
        peak = Math.max(peak, memory() - baseline);
        assert.ok(performance.now() - started < 5000, `${form}: took more than 5 s`);
        assert.ok(peak < PEAK_LIMIT, `${form}: ${Math.round(peak / 2 ** 20)} MiB over the baseline`);
      }),
      { numRuns: 150 },
    );
    gc();
    const retained = memory() - baseline;
    assert.ok(retained < 32 << 20, `${Math.round(retained / 2 ** 20)} MiB still held after the runs`);
    // Both outcomes must occur, or the property only ever tried one path.
    assert.ok(results > 10 && codedOnly > 10, `${results} results, ${codedOnly} errors`);
  });
});
