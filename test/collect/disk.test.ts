import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { diskUsage, parseDf } from '../../src/collect/collectors/disk.ts';
import { execResult } from '../helpers/exec-result.ts';

describe('the disk collector', () => {
  it("parses this machine's real df output, agreeing with statfs", () => {
    const out = execSync(diskUsage.command(undefined), { encoding: 'utf8' });
    const root = parseDf(out).find((f) => f.mount === '/');
    assert.ok(root, out);
    const fs = statfsSync('/');
    const used = ((fs.blocks - fs.bfree) / (fs.blocks - fs.bfree + fs.bavail)) * 100;
    assert.ok(
      Math.abs(root.usedPercent - used) <= 1,
      `df ${root.usedPercent}% vs statfs ${used.toFixed(1)}%`,
    );
    assert.ok(root.inodesUsedPercent !== null);
  });

  it('turns full filesystems and inodes into findings, ignoring pseudo filesystems', () => {
    const out = [
      'Filesystem     Type  1024-blocks      Used Available Capacity Mounted on',
      '/dev/vda1      ext4     51474912  50000000   1474912      98% /',
      'tmpfs          tmpfs     1000000    999000      1000     100% /run',
      '/dev/vdb1      xfs     104857600  10485760  94371840      10% /var/lib/docker',
      '---',
      'Filesystem      Inodes  IUsed   IFree IUse% Mounted on',
      '/dev/vda1      3276800 100000 3176800    4% /',
      '/dev/vdb1      5242880 5200000  42880   99% /var/lib/docker',
    ].join('\n');
    const { findings } = diskUsage.parse(execResult(out), undefined);
    assert.deepEqual(
      findings.map((f) => [f.severity, f.title]),
      [
        ['critical', '/ is 98% full (1.4 GiB free of 49.1 GiB)'],
        ['critical', '/var/lib/docker has used 99% of its inodes'],
      ],
    );
  });
});
