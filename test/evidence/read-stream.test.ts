import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ReportSchema } from '../../src/analyze/report-schema.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { type CCore, makeCCore } from '../helpers/cores.ts';
import { paxMember, tarEnd, tarMember } from '../helpers/tar-bytes.ts';

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
    const report = await analyzeFiles([tar], { workers: 0 });
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
      const report = await analyzeFiles([file], { workers: 0 });
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
          [
            'crash/core.4.zst',
            'nightshift_not_core',
            'not a core dump: zstd-compressed data (decompress it with zstd -d first)',
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
});
