import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatProgress, progressBar } from '../../src/cli/progress.ts';

describe('progress bar', () => {
  it('shows bytes, rate and ETA', () => {
    assert.equal(
      formatProgress(512 * 1024 * 1024, 1024 * 1024 * 1024, 1000, 10),
      '[#####.....]  50% 512 MiB/1.0 GiB of files read 512 MiB/s ETA 1s',
    );
    assert.equal(formatProgress(0, 100, 0, 4), '[....]   0% 0 B/100 B of files read 0 B/s ETA --');
  });

  it('draws on a terminal, at most ten times a second, and nothing elsewhere', () => {
    const written: string[] = [];
    let now = 0;
    const tty = { isTTY: true, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
    const bar = progressBar(tty, () => now);
    bar.update(1, 10);
    now = 50;
    bar.update(2, 10);
    now = 150;
    bar.update(3, 10);
    bar.done();
    assert.equal(written.length, 3);
    assert.match(written[0]!, /^\r\[.*\] {2}10%/);
    assert.equal(written[2], '\r\u001b[K');
    const pipe = {
      isTTY: false,
      write: () => assert.fail('wrote to a pipe'),
    } as unknown as NodeJS.WriteStream;
    progressBar(pipe).update(1, 2);
  });
});
