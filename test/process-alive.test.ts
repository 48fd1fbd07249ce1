import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { processAlive } from '../src/process-alive.ts';

test('processAlive: this process is alive, one that has exited and been reaped is not', () => {
  assert.equal(processAlive(process.pid), true);
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.equal(child.status, 0);
  // Reaped by spawnSync; the kernel hands pids out in increasing order, so it is not reused this fast.
  assert.equal(processAlive(child.pid!), false);
});

test('processAlive: a process of another user (pid 1) counts as alive', () => {
  // As root kill(1, 0) succeeds; as anyone else it fails with EPERM: alive either way.
  assert.equal(processAlive(1), true);
});
