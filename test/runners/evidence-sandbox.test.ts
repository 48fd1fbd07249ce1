import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { hostsSecretFiles, loadHostsFile } from '../../src/config/hosts.ts';
import type { CodedError } from '../../src/errors.ts';
import { findCgroupHome } from '../../src/runners/cgroup.ts';
import { findExecutable, runInSandbox, tasksOfUser } from '../../src/runners/evidence-sandbox.ts';
import { ensureTestUser } from '../helpers/users.ts';

const MiB = 1024 * 1024;

/** Live processes whose command line holds `marker`. */
function processesWith(marker: string): string[] {
  return readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false;
      }
    });
}

/**
 * The evidence sandbox with the real bubblewrap: each test shows one wall holding, and where it
 * matters the same script outside the sandbox (or under a looser limit) showing the wall is what
 * stopped it. bwrap and python3 must be installed (.ci/run installs them), and the host must let
 * the bot make cgroups with the memory and pids controllers (root, on v2 or v1): the tests fail
 * without them, they never skip.
 */

describe('the evidence sandbox (bubblewrap)', () => {
  let root: string;
  let evidence: string;
  let server: Server;
  let port: number;
  let requests = 0;

  before(async () => {
    assert.ok(findExecutable('bwrap'), 'bubblewrap (bwrap) must be installed: apt-get install bubblewrap');
    assert.ok(findExecutable('python3'), 'python3 must be installed');
    const cgroups = findCgroupHome();
    assert.ok(cgroups.ok, `scripts cannot be bounded here: ${cgroups.ok ? '' : cgroups.reason}`);
    root = mkdtempSync(join(tmpdir(), 'nightshift-sandbox-test-'));
    evidence = join(root, 'incident-7');
    mkdirSync(join(evidence, 'run-1'), { recursive: true });
    writeFileSync(join(evidence, 'run-1', 'strings.txt'), 'icy-name: Radio Nightly\nGET /stream HTTP/1.1\n');
    server = createServer((_req, res) => {
      requests++;
      res.end('reached');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(root, { recursive: true, force: true });
  });

  const run = (script: string, over: Partial<Parameters<typeof runInSandbox>[0]> = {}) =>
    runInSandbox({ script, evidenceDir: evidence, timeoutMs: 20_000, ...over });

  it('reads the evidence at /evidence, and works in a fresh /work, a tmpfs of its own', async () => {
    const result = await run(
      'grep -c icy- /evidence/run-1/strings.txt; pwd; echo kept > out.txt; cat out.txt; stat -f -c %T /work',
    );
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.stdout, '1\n/work\nkept\ntmpfs\n');
    assert.equal(result.timedOut, false);
    assert.equal(result.truncated, false);
    assert.equal(result.outputBytes, Buffer.byteLength(result.stdout) + Buffer.byteLength(result.stderr));
  });

  it('cannot write the evidence, nor the rest of /', async () => {
    const result = await run(
      'echo x > /evidence/run-1/strings.txt; echo $? ; touch /evidence/new; echo $?; touch /usr/nightshift-was-here; echo $?',
    );
    assert.equal(result.stdout, '2\n1\n1\n');
    assert.match(result.stderr, /Read-only file system/);
    assert.equal(
      readFileSync(join(evidence, 'run-1', 'strings.txt'), 'utf8'),
      'icy-name: Radio Nightly\nGET /stream HTTP/1.1\n',
    );
    assert.deepEqual(readdirSync(evidence), ['run-1']);
  });

  it('cannot reach a server on the host’s 127.0.0.1', async () => {
    const fetcher = `python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:${port}/', timeout=3).read().decode())"`;
    // Outside the sandbox the same command reaches it, so the test can fail.
    assert.equal((await promisify(execFile)('/bin/sh', ['-c', fetcher])).stdout, 'reached\n');
    const before = requests;
    const result = await run(fetcher);
    assert.notEqual(result.exitCode, 0);
    assert.match(result.stderr, /Connection refused|Network is unreachable|URLError/);
    assert.equal(requests, before, 'the server saw no request from the sandbox');
  });

  it('does not see the bot’s environment', async () => {
    process.env.NIGHTSHIFT_TEST_SECRET = 'parent-secret-value-123';
    try {
      const result = await run('env');
      assert.equal(result.exitCode, 0);
      assert.ok(!result.stdout.includes('parent-secret-value-123'));
      assert.ok(!result.stdout.includes('NIGHTSHIFT_TEST_SECRET'));
      const names = result.stdout
        .trim()
        .split('\n')
        .map((line) => line.split('=')[0])
        .sort();
      assert.deepEqual(names, ['HOME', 'LANG', 'PATH', 'PWD']);
      assert.match(result.stdout, /^HOME=\/work$/m);
      assert.match(result.stdout, /^LANG=C\.UTF-8$/m);
    } finally {
      delete process.env.NIGHTSHIFT_TEST_SECRET;
    }
  });

  it('hides the paths it is told to hide (the bot’s data and keys)', async () => {
    // Outside /tmp, /home and /root (emptied anyway), where the sandbox would otherwise show it.
    const data = mkdtempSync('/var/lib/nightshift-sandbox-test-');
    try {
      writeFileSync(join(data, 'id_ed25519'), 'PRIVATE KEY');
      writeFileSync(join(root, 'hosts-key'), 'ANOTHER KEY');
      const script = `cat ${join(data, 'id_ed25519')}; echo; ls -A ${data} | wc -l`;
      const seen = await run(script);
      assert.equal(seen.stdout, 'PRIVATE KEY\n1\n', 'without hide the sandbox can read it');
      const hidden = await run(script, { hide: [data, join(root, 'hosts-key')] });
      assert.equal(hidden.stdout, '\n0\n');
      assert.match(hidden.stderr, /No such file/);
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('hides a path inside another hidden one with it (the evidence directory inside the data directory)', async () => {
    const data = mkdtempSync('/var/lib/nightshift-sandbox-test-');
    try {
      mkdirSync(join(data, 'evidence'));
      writeFileSync(join(data, 'evidence', 'core.1'), 'CORE');
      writeFileSync(join(data, 'id_ed25519'), 'PRIVATE KEY');
      const hidden = await run(
        `ls -A ${data} | wc -l; test -e ${join(data, 'evidence', 'core.1')}; echo $?`,
        {
          hide: [join(data, 'evidence'), data],
        },
      );
      assert.equal(hidden.exitCode, 0, hidden.stderr);
      assert.equal(hidden.stdout, '0\n1\n', 'the data directory is empty, the evidence in it gone');
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('cannot fill the disk: /work stops at its size, and /dev is read-only with a small /dev/shm', async () => {
    const fill = (path: string) =>
      `dd if=/dev/zero of=${path} bs=1M count=100 2>/dev/null; echo $?; wc -c < ${path}`;
    const result = await run(
      `${fill('/work/fill')}; touch /dev/x 2>/dev/null; echo $?; ${fill('/dev/shm/fill')}`,
    );
    const [work, workSize, touched, shm, shmSize] = result.stdout.trim().split('\n');
    assert.equal(work, '1', 'writing 100 MiB into /work fails');
    assert.equal(Number(workSize), 64 * 1024 * 1024, 'at the default cap of 64 MiB');
    assert.equal(touched, '1', 'nothing new in /dev');
    assert.equal(shm, '1', '/dev/shm is small');
    assert.ok(Number(shmSize) <= 16 * 1024 * 1024, `${shmSize} bytes in /dev/shm`);
    const roomy = await run(fill('/work/fill'), { workBytes: 128 * 1024 * 1024 });
    assert.equal(roomy.stdout, `0\n${100 * 1024 * 1024}\n`, 'under a larger cap the same write fits');
  });

  it('contains a fork bomb, and ends it at its time limit', async () => {
    // RLIMIT_NPROC is not enforced for root: as root, the sandbox runs as nobody.
    const runAs = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
    const uid = runAs?.uid ?? process.getuid!();
    if (runAs) chmodSync(root, 0o755);
    const before = tasksOfUser(uid);
    const started = Date.now();
    const result = await run('f() { f | f & }; f; sleep 30', {
      timeoutMs: 3000,
      maxProcesses: 32,
      ...(runAs ? { runAs } : {}),
    });
    assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);
    assert.match(result.stderr, /Cannot fork|Resource temporarily unavailable/, 'forks were refused');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(tasksOfUser(uid) <= before + 1, 'nothing of the bomb is left behind');
  });

  it('runs as another user, and leaves alone hidden paths that user cannot reach', async () => {
    assert.equal(process.getuid?.(), 0, 'this test runs as root, as the bot does when it needs runAs');
    const user = await ensureTestUser();
    const runAs = { uid: user.uid, gid: user.gid };
    const keys = mkdtempSync('/var/lib/nightshift-sandbox-keys-');
    const shared = mkdtempSync('/var/lib/nightshift-sandbox-shared-');
    try {
      // A key in a 0700 directory: bwrap, running as the user, could not even mount over it.
      writeFileSync(join(keys, 'id_web1'), 'SSH PRIVATE KEY');
      writeFileSync(join(shared, 'policy.yml'), 'approvers: [U1]');
      chmodSync(shared, 0o755);
      chmodSync(root, 0o755);
      const script = `id -u; cat ${join(keys, 'id_web1')} ${join(shared, 'policy.yml')}`;
      const result = await run(script, { runAs, hide: [join(keys, 'id_web1'), join(shared, 'policy.yml')] });
      assert.equal(result.stdout, `${user.uid}\n`, result.stderr);
      assert.match(result.stderr, new RegExp(`${join(keys, 'id_web1')}: Permission denied`));
      assert.ok(!result.stderr.includes('approvers'));
      const unhidden = await run(script, { runAs });
      assert.equal(
        unhidden.stdout,
        `${user.uid}\napprovers: [U1]`,
        'what the user can reach is hidden by hide',
      );
    } finally {
      rmSync(keys, { recursive: true, force: true });
      rmSync(shared, { recursive: true, force: true });
      chmodSync(root, 0o700);
    }
  });

  it('does not show the hosts file, its known_hosts and keys, nor the policy file', async () => {
    const config = mkdtempSync('/var/lib/nightshift-sandbox-config-');
    try {
      const hostsPath = join(config, 'hosts.yml');
      writeFileSync(join(config, 'id_web1'), 'SSH PRIVATE KEY');
      writeFileSync(join(config, 'known_hosts'), 'web1 ssh-ed25519 AAAA');
      writeFileSync(join(config, 'policy.yml'), 'approvers: [U1]');
      writeFileSync(
        hostsPath,
        `knownHosts: ${join(config, 'known_hosts')}\nhosts:\n  - name: web1\n    address: 10.0.0.5\n    user: ops\n    key: ${join(config, 'id_web1')}\n`,
      );
      const hide = [...hostsSecretFiles(loadHostsFile(hostsPath), hostsPath), join(config, 'policy.yml')];
      const script = `cat ${hide.join(' ')}`;
      const seen = await run(script);
      assert.match(seen.stdout, /10\.0\.0\.5/, 'without hide the sandbox can read them');
      const hidden = await run(script, { hide });
      assert.equal(hidden.stdout, '');
      for (const text of ['10.0.0.5', 'SSH PRIVATE KEY', 'AAAA', 'approvers'])
        assert.ok(!hidden.stdout.includes(text) && !hidden.stderr.includes(text), text);
    } finally {
      rmSync(config, { recursive: true, force: true });
    }
  });

  it('kills a script at its time limit, and everything it started', async () => {
    const marker = `100.${process.pid}`;
    const started = Date.now();
    const result = await run(`sleep ${marker} & sleep ${marker}`, { timeoutMs: 1000 });
    assert.equal(result.timedOut, true);
    assert.equal(result.signal, 'SIGKILL');
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(processesWith(marker), [], 'no sleep is left behind');
  });

  it('stops a script that writes more than the output cap', async () => {
    const started = Date.now();
    const result = await run('yes', { maxOutputBytes: 64 * 1024 });
    assert.equal(result.truncated, true);
    assert.equal(result.timedOut, false);
    assert.equal(result.outputBytes, 64 * 1024);
    assert.equal(Buffer.byteLength(result.stdout), 64 * 1024);
    assert.ok(result.stdout.startsWith('y\ny\n'));
    assert.ok(Date.now() - started < 5000);
  });

  it('stops an allocation past the memory cap', async () => {
    const allocate = (mib: number) =>
      `python3 -c "b = bytearray(${mib} * 1024 * 1024); b[-1] = 1; print('allocated')"`;
    const small = await run(allocate(16), { memoryBytes: 256 * 1024 * 1024 });
    assert.equal(small.stdout, 'allocated\n', small.stderr);
    const big = await run(allocate(512), { memoryBytes: 256 * 1024 * 1024 });
    assert.notEqual(big.exitCode, 0);
    assert.equal(big.stdout, '');
    assert.match(big.stderr, /MemoryError/);
  });

  it('bounds the memory of all the script’s processes together: eight of 300 MiB under 512 MiB', async () => {
    // Eight processes at once, each committing every page of 300 MiB and keeping it a while: under
    // RLIMIT_AS (1 GiB a process) each one fits, 2.4 GiB between them.
    const script = `for i in 1 2 3 4 5 6 7 8; do python3 -c "
import time
b = bytearray(300 * 2**20)
for i in range(0, len(b), 4096): b[i] = 1
print('held', flush=True)
time.sleep(2)" & done; wait`;
    const bounded = await run(script, { totalMemoryBytes: 512 * MiB });
    assert.equal(bounded.cgroup.memoryLimitBytes, 512 * MiB, 'the run reports its memory limit');
    assert.ok(bounded.cgroup.peakMemoryBytes !== null, 'the kernel reports the peak');
    assert.ok(
      bounded.cgroup.peakMemoryBytes <= 512 * MiB,
      `all the processes together held ${bounded.cgroup.peakMemoryBytes} bytes at most`,
    );
    assert.ok(bounded.cgroup.oomKills >= 1, 'processes were killed at the limit, and the run says so');
    // One that held its 300 MiB can be killed for the next one's: the peak is what counts.
    const held = bounded.stdout.split('\n').filter((line) => line === 'held').length;
    assert.ok(held < 8, `${held} of 8 processes held their 300 MiB`);
    assert.equal(existsSync(bounded.cgroup.path), false, 'the run’s cgroup is gone');
    // Under a looser bound the same script holds all of it: the bound is what stopped it.
    const loose = await run(script, { totalMemoryBytes: 4096 * MiB });
    assert.equal(loose.stdout, 'held\n'.repeat(8), loose.stderr);
    assert.equal(loose.cgroup.oomKills, 0);
    assert.ok(
      (loose.cgroup.peakMemoryBytes ?? 0) > 2000 * MiB,
      `${loose.cgroup.peakMemoryBytes} bytes at the peak without the bound`,
    );
  });

  it('bounds the processes a script has at once (as root too), and leaves none of them behind', async () => {
    // As root RLIMIT_NPROC does not hold; the cgroup's pids.max does.
    const marker = `200.${process.pid}`;
    // dash gives up at the first fork refused, in the subshell; the count after it forks nothing.
    const result = await run(
      `(i=0; while [ $i -lt 200 ]; do sleep ${marker} & i=$((i+1)); done); set -- /proc/[0-9]*; echo $#`,
      { maxProcesses: 64 },
    );
    assert.equal(result.cgroup.maxProcesses, 64, 'the run reports its process limit');
    assert.ok(result.cgroup.forkFailures >= 1, 'forks were refused at the limit, and the run says so');
    const seen = Number(result.stdout.trim());
    assert.ok(seen > 10 && seen <= 64, `${seen} processes in the sandbox at once`);
    assert.match(result.stderr, /Cannot fork/);
    assert.deepEqual(processesWith(marker), [], 'no sleep is left behind');
    assert.equal(existsSync(result.cgroup.path), false, 'the run’s cgroup is gone');
  });

  it('kills what left the process group and its session at the time limit, and removes the cgroup', async () => {
    // setsid: a new session and process group, out of the reach of the group kill.
    const marker = `300.${process.pid}`;
    const result = await run(`setsid sleep ${marker} & setsid sleep ${marker} & sleep ${marker}`, {
      timeoutMs: 1000,
    });
    assert.equal(result.timedOut, true);
    assert.deepEqual(processesWith(marker), [], 'no sleep is left behind');
    assert.equal(existsSync(result.cgroup.path), false, 'the run’s cgroup is gone');
    assert.equal(result.cgroup.oomKills, 0);
    assert.equal(result.cgroup.forkFailures, 0);
  });

  it('refuses to run where no cgroup can bound the script, and says why', async () => {
    const marker = join(root, 'ran-unbounded');
    const script = `touch ${marker}`;
    const refused = (pattern: RegExp) => (error: CodedError) => {
      assert.equal(error.code, 'nightshift_sandbox_unavailable');
      assert.match(
        error.message,
        /^no cgroup can bound the script's memory and processes, so the script was not run: /,
      );
      assert.match(error.message, pattern);
      return true;
    };
    await assert.rejects(
      run(script, { cgroup: { root: join(root, 'no-cgroup-here') } }),
      refused(/there is no cgroup file system at .*no-cgroup-here/),
    );
    // A directory laid out like one, but no cgroup file system: it would bound nothing.
    const fake = join(root, 'fake-cgroup');
    for (const controller of ['memory', 'pids']) {
      mkdirSync(join(fake, controller), { recursive: true });
      writeFileSync(join(fake, controller, 'cgroup.procs'), '');
    }
    await assert.rejects(
      run(script, { cgroup: { root: fake, parent: '/' } }),
      refused(/is not on a cgroup file system/),
    );
    await assert.rejects(
      run(script, { cgroup: { parent: '/nightshift-no-such-cgroup' } }),
      refused(/nightshift-no-such-cgroup/),
    );
    assert.equal(existsSync(marker), false, 'the script did not run');
  });

  it('refuses to run without bubblewrap, never unsandboxed', async () => {
    const path = mkdtempSync(join(root, 'path-'));
    await assert.rejects(run('touch /tmp/ran-unsandboxed', { searchPath: path }), (error: CodedError) => {
      assert.equal(error.code, 'nightshift_sandbox_unavailable');
      assert.match(error.message, /bubblewrap \(bwrap\) is not installed, so the script was not run/);
      return true;
    });
  });
});
