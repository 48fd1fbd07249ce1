import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  diskChange,
  type FreeItem,
  freeCommand,
  freeText,
  HASH_CHEAP_BYTES,
  type PulledArtifact,
  parseFreeOutput,
  parseFreeText,
  planFree,
} from '../../src/collect/free-plan.ts';
import { coreHandler, planGuard } from '../../src/collect/guard-plan.ts';

/**
 * The free proposal's text and the command that deletes one file: the text round-trips and refuses
 * what it would not write; the command, run by a real `sh` on real files, deletes a file only
 * while it is the one pulled, and treats its path as data.
 */
const SHA = 'a'.repeat(64);
const pulled = (over: Partial<PulledArtifact> = {}): PulledArtifact => ({
  path: '/var/crash/core',
  state: 'complete',
  sha256: SHA,
  deleted: false,
  kept: true,
  remoteSizeBytes: 1000,
  remoteMtime: new Date(1_764_755_000_500),
  file: '2049:77',
  layer: null,
  contentBytes: 1000,
  ...over,
});

describe('the free plan', () => {
  it('proposes only files pulled whole whose size and mtime the host told, and says why not the others', () => {
    const plan = planFree([
      pulled(),
      pulled({ path: '/a', state: 'failed' }),
      pulled({ path: '/b', contentBytes: 999 }),
      pulled({ path: '/c', remoteMtime: null }),
      pulled({ path: '/d', kept: false }),
      pulled({ path: '/e', deleted: true }),
      pulled({ path: '/app/core', container: 'web1', layer: '/var/lib/x/diff', file: null }),
    ]);
    assert.deepEqual(
      plan.items.map((i) => i.path),
      ['/var/crash/core', '/app/core'],
    );
    assert.equal(plan.items[0]!.mtime, 1_764_755_000);
    assert.equal(plan.bytes, 2000);
    assert.deepEqual(
      plan.skipped.map((s) => s.source.path),
      ['/a', '/b', '/c', '/d'],
    );
    assert.match(plan.skipped[1]!.reason, /999 bytes came home of the 1000/);
  });

  it('round-trips its text, paths with tabs and quotes included, and refuses anything else', () => {
    const items: FreeItem[] = [
      { path: "/tmp/it's\ta core", sizeBytes: 5, mtime: 7, file: '1:2', sha256: SHA },
      { container: 'web1', path: '/app/core', sizeBytes: 9, mtime: 8, layer: '/l/diff', sha256: SHA },
    ];
    assert.deepEqual(parseFreeText(freeText(items)), items);
    for (const bad of [
      `size=5\tmtime=7\tsha256=${SHA}\trelative/core`,
      `size=5\tsha256=${SHA}\t/core`,
      `size=5\tmtime=7\t/core`,
      `size=5\tmtime=7\tsha256=${SHA}\tlayer=/l\t/core`,
      `size=5\tsize=6\tmtime=7\tsha256=${SHA}\t/core`,
      `size=5\tmtime=7\tfile=x\tsha256=${SHA}\t/core`,
    ])
      assert.throws(() => parseFreeText(bad), /list of files to delete/, bad);
  });

  it('needs the sha256 of what came home only for a file the host checks by hash: a big core kept as zstd has none', () => {
    const big = HASH_CHEAP_BYTES + 1;
    const plan = planFree([
      pulled({ path: '/big', sha256: null, remoteSizeBytes: big, contentBytes: big }),
      pulled({ path: '/small', sha256: null }),
      pulled({ path: '/unknown', sha256: null, remoteSizeBytes: null }),
    ]);
    assert.deepEqual(
      plan.items.map((i) => i.path),
      ['/big'],
    );
    assert.equal(plan.items[0]!.sha256, undefined);
    assert.match(plan.skipped[0]!.reason, /not hashed/);
    const text = freeText(plan.items);
    assert.doesNotMatch(text, /sha256=/);
    assert.deepEqual(parseFreeText(text), plan.items);
    // A small one without a hash is refused when read back, however the text was made.
    assert.throws(() => parseFreeText('size=1000\tmtime=7\t/core'), /no sha256/);
    assert.throws(() => parseFreeText(`size=${big}\tmtime=7\tsha256=xyz\t/core`), /not one/);
  });

  it('reads the one result line, and anything else as a failure', () => {
    assert.deepEqual(parseFreeOutput('noise\nnightshift-free:changed:size and mtime now 6 7\n', '', 0), {
      status: 'changed',
      detail: 'size and mtime now 6 7',
    });
    assert.equal(parseFreeOutput('', 'Connection reset', null).status, 'failed');
  });

  it('shows the disk before → after', () => {
    const fs = (availKiB: number, usedPercent: number) => ({
      device: '/dev/sda1',
      type: 'ext4',
      mount: '/',
      sizeKiB: 100 * 1024 * 1024,
      usedKiB: 0,
      availKiB,
      usedPercent,
      inodesUsedPercent: null,
    });
    assert.deepEqual(diskChange([fs(1024 * 1024, 99)], [fs(31 * 1024 * 1024, 69)]), [
      '/: 99% → 69% used, 1.0 GiB → 31.0 GiB free',
    ]);
  });
});

describe('the command that deletes one file, run by sh', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-free-cmd-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const itemOf = (path: string, over: Partial<FreeItem> = {}): FreeItem => {
    const s = statSync(path);
    return {
      path,
      sizeBytes: s.size,
      mtime: Math.floor(s.mtimeMs / 1000),
      file: `${s.dev}:${s.ino}`,
      sha256: createHash('sha256').update(readFileSync(path)).digest('hex'),
      ...over,
    };
  };
  const run = (item: FreeItem, hashBelow?: number) => {
    const r = spawnSync('sh', ['-c', freeCommand(item, hashBelow)], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    return parseFreeOutput(r.stdout, r.stderr, r.status);
  };

  it('deletes the file pulled, and says gone the second time', () => {
    const path = join(dir, 'core');
    writeFileSync(path, Buffer.alloc(8192, 7));
    const item = itemOf(path);
    assert.deepEqual(run(item), { status: 'deleted', detail: '' });
    assert.equal(existsSync(path), false);
    assert.equal(run(item).status, 'gone');
  });

  it('keeps a file whose size, mtime, inode or bytes are not those pulled', () => {
    const path = join(dir, 'changed');
    writeFileSync(path, Buffer.alloc(4096, 1));
    const item = itemOf(path);
    for (const [over, why] of [
      [{ sizeBytes: item.sizeBytes + 1 }, /size and mtime now 4096 /],
      [{ mtime: item.mtime - 60 }, /size and mtime now/],
      [{ file: '1:1' }, /device:inode/],
      [{ sha256: 'b'.repeat(64) }, /sha256 now/],
    ] as const) {
      const outcome = run({ ...item, ...over });
      assert.equal(outcome.status, 'changed');
      assert.match(outcome.detail, why);
    }
    // Too big to hash cheaply: size, mtime and inode alone decide.
    assert.equal(run({ ...item, sha256: 'b'.repeat(64) }, 100).status, 'deleted');
  });

  it('never deletes a file the host checks by hash when no hash came with it', () => {
    const path = join(dir, 'unhashed');
    writeFileSync(path, Buffer.alloc(4096, 9));
    const { sha256: _, ...item } = itemOf(path);
    assert.deepEqual(run(item), {
      status: 'failed',
      detail: 'no sha256 of what came home to check it against',
    });
    assert.equal(existsSync(path), true);
    // Too big to hash cheaply: size, mtime and inode decide, as for any big file.
    assert.equal(run(item, 100).status, 'deleted');
    assert.equal(existsSync(path), false);
  });

  it('does not follow a core swapped for a link, nor delete what it points at', () => {
    const target = join(dir, 'precious');
    writeFileSync(target, 'keep me');
    const path = join(dir, 'swapped');
    writeFileSync(path, Buffer.alloc(2048));
    const item = itemOf(path);
    unlinkSync(path);
    symlinkSync(target, path);
    assert.deepEqual(run(item), { status: 'changed', detail: 'not a regular file now' });
    assert.equal(readFileSync(target, 'utf8'), 'keep me');
  });

  it('treats a path of quotes, $() and backticks as data', () => {
    const canary = join(dir, 'pwned');
    // Run in `dir`: were the name ever code, `pwned` would appear there.
    const path = join(dir, `it's $(touch pwned) \`touch pwned\`; "x" $HOME`);
    writeFileSync(path, Buffer.alloc(1024, 3));
    assert.equal(run(itemOf(path)).status, 'deleted');
    assert.equal(existsSync(path), false);
    assert.equal(existsSync(canary), false);
  });
});

describe('the guard', () => {
  it('caps systemd-coredump in its own drop-in when cores go there', () => {
    const guard = planGuard({
      host: 'web',
      corePattern: '|/lib/systemd/systemd-coredump %P %u %g',
      containers: [],
    });
    assert.match(guard.script!.text, /^MaxUse=4294967296$/m);
    assert.match(guard.script!.text, /^ProcessSizeMax=1073741824$/m);
    assert.deepEqual(guard.advice, []);
  });

  it('pipes a plain pattern to a capped handler, and advises recreating the containers', () => {
    const guard = planGuard({ host: 'web', corePattern: 'core\n$(reboot)', containers: ['web1'] });
    assert.match(
      guard.script!.text,
      /sysctl -w 'kernel\.core_pattern=\|\/usr\/local\/sbin\/nightshift-core %p %t %e'/,
    );
    // The old pattern is shown on one comment line, whatever it held.
    assert.match(guard.script!.text, /^# Before: core\?\$\(reboot\)$/m);
    assert.equal(guard.script!.text.split('\n').filter((l) => l.includes('reboot')).length, 1);
    assert.match(guard.advice[0]!, /web1.*--ulimit core=0/);
  });

  it('has a handler that, run as the kernel runs it, cuts a core at the cap and keeps none when the disk is short', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nightshift-core-handler-'));
    try {
      const core = Buffer.alloc(3 * 1024 * 1024, 9);
      const run = (keepFreeBytes: number) => {
        const script = join(dir, 'handler');
        writeFileSync(script, coreHandler({ dir, maxCoreBytes: 1024 * 1024, keepFreeBytes }).join('\n'));
        const r = spawnSync('sh', [script, '42', '1700000000', 'crash'], { input: core });
        assert.equal(r.status, 0, String(r.stderr));
        return join(dir, 'core.crash.42.1700000000');
      };
      assert.equal(statSync(run(1024 * 1024)).size, 1024 * 1024);
      unlinkSync(join(dir, 'core.crash.42.1700000000'));
      // More free space asked for than any disk has: nothing is written.
      assert.equal(existsSync(run(2 ** 60)), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives advice only for another pipe helper', () => {
    const guard = planGuard({ host: 'web', corePattern: '|/usr/share/apport/apport %p', containers: [] });
    assert.equal(guard.script, undefined);
    assert.match(guard.advice[0]!, /apport/);
  });
});
