import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  type CgroupHome,
  createScriptCgroup,
  findCgroupHome,
  removeStaleCgroups,
} from '../../src/runners/cgroup.ts';

/**
 * The cgroups evidence scripts run in, on this host's real cgroup file systems (v2, or v1's
 * memory and pids hierarchies). The bot must be able to make them (root): the tests fail where it
 * cannot, they never skip.
 */

const home = (): CgroupHome => {
  const found = findCgroupHome();
  assert.ok(found.ok, `no cgroup for scripts here: ${found.ok ? '' : found.reason}`);
  return found.home;
};
const parents = (h: CgroupHome) => (h.version === 2 ? [h.dir] : [h.memoryDir, h.pidsDir]);

describe('script cgroups', () => {
  it('are made under the process’s own cgroup in each hierarchy', () => {
    const h = home();
    const own = readFileSync('/proc/self/cgroup', 'utf8');
    if (h.version === 2) assert.ok(h.dir.endsWith(/^0::(.*)$/m.exec(own)![1]!.replace(/\/$/, '')));
    else {
      assert.ok(
        h.memoryDir.endsWith(/^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(own)![1]!.replace(/\/$/, '')),
      );
      assert.ok(
        h.pidsDir.endsWith(/^\d+:(?:[^:]*,)?pids(?:,[^:]*)?:(.*)$/m.exec(own)![1]!.replace(/\/$/, '')),
      );
    }
  });

  it('hold their limits and what joined them, and are gone after remove, with what ran in them', async () => {
    const cgroup = createScriptCgroup(home(), { memoryBytes: 96 * 1024 * 1024, maxProcesses: 12 });
    const [memoryDir, pidsDir] = [cgroup.dirs[0]!, cgroup.dirs[cgroup.dirs.length - 1]!];
    const limit = cgroup.home.version === 2 ? 'memory.max' : 'memory.limit_in_bytes';
    assert.equal(readFileSync(join(memoryDir, limit), 'utf8').trim(), String(96 * 1024 * 1024));
    assert.equal(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim(), '12');
    // setsid: out of any process group the bot could kill; the cgroup still holds it.
    const sleeper = spawn('setsid', ['sleep', '60'], { stdio: 'ignore' });
    await new Promise((resolve) => sleeper.once('spawn', resolve));
    cgroup.join(sleeper.pid!);
    assert.deepEqual(cgroup.pids(), [sleeper.pid]);
    const report = cgroup.report();
    assert.equal(report.memoryLimitBytes, 96 * 1024 * 1024);
    assert.equal(report.maxProcesses, 12);
    assert.equal(report.oomKills, 0);
    assert.equal(report.forkFailures, 0);
    const exited = new Promise((resolve) => sleeper.once('exit', (_code, signal) => resolve(signal)));
    await cgroup.remove();
    assert.equal(await exited, 'SIGKILL');
    for (const dir of cgroup.dirs) assert.equal(existsSync(dir), false, `${dir} is removed`);
  });

  it('left behind by a bot that is gone are removed; a live bot’s are not', () => {
    const h = home();
    const stale = 'nightshift-run-999999999-1-abcdef';
    const live = `nightshift-run-${process.pid}-999999-abcdef`;
    for (const parent of parents(h)) {
      mkdirSync(join(parent, stale));
      mkdirSync(join(parent, live));
    }
    try {
      assert.equal(removeStaleCgroups(h), parents(h).length);
      for (const parent of parents(h)) {
        assert.equal(existsSync(join(parent, stale)), false);
        assert.equal(existsSync(join(parent, live)), true);
      }
    } finally {
      for (const parent of parents(h))
        for (const name of [stale, live]) if (existsSync(join(parent, name))) rmdirSync(join(parent, name));
    }
  });

  it('say why there is nowhere to make them', () => {
    const found = findCgroupHome({ parent: '/nightshift-no-such-cgroup' });
    assert.equal(found.ok, false);
    assert.match(found.ok ? '' : found.reason, /nightshift-no-such-cgroup is not a cgroup/);
    const nothing = findCgroupHome({ root: '/nonexistent-cgroup-root' });
    assert.deepEqual(nothing, {
      ok: false,
      reason: 'there is no cgroup file system at /nonexistent-cgroup-root',
    });
  });
});
