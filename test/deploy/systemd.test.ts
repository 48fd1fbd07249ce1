import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadSettings } from '../../src/config/settings.ts';
import { requireTool } from '../helpers/reference-tools.ts';

/**
 * deploy/systemd/nightshift.service, checked as far as a machine without systemd running allows:
 * `systemd-analyze verify` reads it (its every directive and value), and the evidence sandbox runs
 * under the capability bounding set and no_new_privs it gives the bot (setpriv sets both as
 * systemd would), while the same run without one of those capabilities fails. Needs root,
 * systemd-analyze, setpriv, bwrap and cgroups the bot can make; a missing tool fails the test.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const unitPath = join(root, 'deploy/systemd/nightshift.service');
const unit = readFileSync(unitPath, 'utf8');

/** The values of `key=` lines in the unit, in order. */
const values = (key: string) =>
  unit
    .split('\n')
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));

describe('the systemd unit', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nightshift-systemd-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** systemd-analyze verify of `text` as nightshift.service; what it printed, and its status. */
  function verify(text: string): { status: number | null; output: string } {
    requireTool('systemd-analyze');
    const path = join(dir, 'nightshift.service');
    writeFileSync(path, text);
    const run = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
    return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
  }

  // verify checks that ExecStart's program exists: the npm package's command is not installed on
  // this machine, so the checkout's bin/nightshift stands in for it.
  const installed = () => {
    assert.deepEqual(values('ExecStart'), ['/usr/local/bin/nightshift serve']);
    return unit.replace('ExecStart=/usr/local/bin/nightshift ', `ExecStart=${join(root, 'bin/nightshift')} `);
  };

  it('passes systemd-analyze verify with nothing to say', () => {
    const result = verify(installed());
    assert.equal(result.output, '', 'verify printed warnings');
    assert.equal(result.status, 0);
  });

  it('is what verify reads: a misspelt option or a wrong value is reported', () => {
    const misspelt = verify(installed().replace('ProtectSystem=strict', 'ProtectSytem=strict'));
    assert.match(misspelt.output, /Unknown key 'ProtectSytem'/);
    const wrong = verify(
      installed().replace('RestrictNamespaces=user mnt pid', 'RestrictNamespaces=user mnt pidd'),
    );
    assert.match(wrong.output, /Failed to parse namespace type string/);
  });

  it('has an environment file example serve accepts, where the unit reads it', () => {
    assert.deepEqual(values('EnvironmentFile'), ['/etc/nightshift/nightshift.env']);
    const env: Record<string, string> = {};
    for (const line of readFileSync(join(root, 'deploy/systemd/nightshift.env.example'), 'utf8').split(
      '\n',
    )) {
      const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!;
    }
    const { config, policy } = loadSettings(env);
    assert.equal(config.NIGHTSHIFT_SANDBOX_USER, 'nightshift-sandbox');
    assert.ok(config.DATABASE_URL);
    assert.equal(policy.approvers.users.length, 1);
  });

  it('keeps what bubblewrap needs: its namespaces, netlink, writable cgroups, a /proc it can mount again', () => {
    assert.deepEqual(values('RestrictNamespaces'), ['user mnt pid net ipc uts']);
    assert.match(values('RestrictAddressFamilies').join(' '), /AF_NETLINK/);
    for (const off of [
      'ProtectControlGroups',
      'ProtectKernelTunables',
      'ProtectKernelLogs',
      'PrivateUsers',
      'MemoryDenyWriteExecute',
    ])
      assert.deepEqual(values(off), [], `${off} would stop the sandbox or Node.js`);
    assert.deepEqual(values('NoNewPrivileges'), ['yes']);
  });

  describe('under its capability bounding set and no_new_privs', () => {
    let evidence: string;
    before(() => {
      assert.equal(process.getuid?.(), 0, 'the unit runs the bot as root: so does this test');
      requireTool('setpriv');
      evidence = join(dir, 'incident-1');
      mkdirSync(evidence);
      writeFileSync(join(evidence, 'note.txt'), 'kept evidence\n');
      chmodSync(dir, 0o755);
    });

    /** The capabilities the unit keeps, as setpriv spells them (cap_sys_admin -> sys_admin). */
    const kept = () => {
      const [line] = values('CapabilityBoundingSet');
      assert.ok(line, 'the unit sets CapabilityBoundingSet');
      return line.split(/\s+/).map((cap) => cap.replace(/^CAP_/, '').toLowerCase());
    };

    /** Runs an evidence script through the bot's sandbox (as `runAs`, else root), in a child limited to `caps`. */
    function sandboxed(
      caps: string[],
      runAs?: { uid: number; gid: number },
    ): { status: number | null; output: string } {
      const child = join(dir, 'child.ts');
      writeFileSync(
        child,
        `import { runInSandbox } from ${JSON.stringify(join(root, 'src/runners/evidence-sandbox.ts'))};
const result = await runInSandbox({ script: 'id -u; cat /evidence/note.txt', evidenceDir: ${JSON.stringify(evidence)},
  timeoutMs: 20000${runAs ? `, runAs: ${JSON.stringify(runAs)}` : ''} });
process.stdout.write(JSON.stringify(result));`,
      );
      const run = spawnSync(
        'setpriv',
        [
          '--no-new-privs',
          '--bounding-set',
          ['-all', ...caps.map((cap) => `+${cap}`)].join(','),
          '--inh-caps',
          '-all',
          '--',
          process.execPath,
          child,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      return { status: run.status, output: `${run.stdout}${run.stderr}` };
    }
    const nobody = { uid: 65534, gid: 65534 };
    const ran = (output: string, uid: number) => output.includes(`"stdout":"${uid}\\nkept evidence\\n"`);

    it('runs an evidence script as the sandbox user (bubblewrap unprivileged, in a user namespace)', () => {
      const run = sandboxed(kept(), nobody);
      assert.equal(run.status, 0, run.output);
      const result = JSON.parse(run.output) as { exitCode: number; stdout: string; stderr: string };
      assert.equal(result.stdout, '65534\nkept evidence\n', result.stderr);
      assert.equal(result.exitCode, 0);
    });

    it('runs an evidence script as root when no sandbox user is set (bubblewrap privileged)', () => {
      const run = sandboxed(kept());
      assert.equal(run.status, 0, run.output);
      assert.ok(ran(run.output, 0), run.output);
    });

    it('fails without CAP_SETUID (as the sandbox user) and without CAP_NET_ADMIN (as root)', () => {
      const noSetuid = sandboxed(
        kept().filter((cap) => cap !== 'setuid'),
        nobody,
      );
      assert.ok(!ran(noSetuid.output, 65534), noSetuid.output);
      const noNetAdmin = sandboxed(kept().filter((cap) => cap !== 'net_admin'));
      assert.ok(!ran(noNetAdmin.output, 0), noNetAdmin.output);
      assert.match(noNetAdmin.output, /loopback/);
    });
  });
});
