import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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
});
