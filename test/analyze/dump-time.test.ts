import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { chooseDumpTime, gzipTime } from '../../src/analyze/dump-time.ts';

describe('dump times', () => {
  it('reads the MTIME of a gzip header, and none where it is 0', () => {
    const header = Buffer.from(gzipSync('core'));
    assert.equal(gzipTime(header), undefined, 'node writes MTIME 0');
    header.writeUInt32LE(1_795_626_848, 4);
    assert.equal(gzipTime(header)?.toISOString(), '2026-11-25T17:14:08.000Z');
    header.writeUInt32LE(0xffffffff, 4);
    assert.equal(gzipTime(header)?.toISOString(), '2106-02-07T06:28:15.000Z', 'unsigned');
    assert.equal(gzipTime(Buffer.from('not gzip at all')), undefined);
  });

  it('prefers the tar member, then the gzip header, then the file name, then the file', () => {
    const [tar, gzip, name, file] = [1, 2, 3, 4].map((d) => new Date(Date.UTC(2026, 0, d)));
    assert.deepEqual(chooseDumpTime({ tar, gzip, fileName: name, file: file! }), { at: tar, source: 'tar' });
    assert.deepEqual(chooseDumpTime({ gzip, fileName: name, file: file! }), { at: gzip, source: 'gzip' });
    assert.deepEqual(chooseDumpTime({ fileName: name, file: file! }), { at: name, source: 'file_name' });
    assert.deepEqual(chooseDumpTime({ tar: new Date(Number.NaN), file: file! }), {
      at: file,
      source: 'file',
    });
  });
});
