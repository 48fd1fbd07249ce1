import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { parseKnownHosts } from '../../src/collect/known-hosts.ts';
import { SshConnections } from '../../src/collect/ssh.ts';
import { parseHostsFile } from '../../src/config/hosts.ts';
import { CodedError, ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { requireTool } from '../helpers/reference-tools.ts';
import { hostsBehind } from '../helpers/ssh-hosts.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';

/**
 * Host certificates against real sshds presenting one (HostCertificate, signed with ssh-keygen -s
 * -h), each known_hosts file judged by the bot and by OpenSSH's own ssh client on the same file:
 * they must agree, and the bot must say why it refused.
 */

interface Verdict {
  ok: boolean;
  message?: string;
}

async function bot(sshd: Sshd, knownHosts: string): Promise<Verdict> {
  const hosts = hostsBehind(sshd, [{ name: 'h' }]);
  const ssh = new SshConnections({
    now: systemClock,
    hosts,
    knownHosts: parseKnownHosts(knownHosts),
    log: createLogger({ level: 'silent' }),
    readyTimeoutMs: 8000,
  });
  try {
    const result = await ssh.host('h').exec({ command: 'echo in', timeoutMs: 5000, maxOutputBytes: 100 });
    assert.equal(result.stdout, 'in\n');
    return { ok: true };
  } catch (error) {
    assert.ok(error instanceof CodedError);
    assert.equal(error.code, ErrorCode.HostKeyRejected, error.message);
    return { ok: false, message: error.message };
  } finally {
    await ssh.closeAll();
  }
}

/** OpenSSH's client on the same known_hosts file, nothing else configured. */
function openssh(sshd: Sshd, knownHostsPath: string): Verdict {
  const run = spawnSync(
    'ssh',
    [
      '-F',
      '/dev/null',
      '-o',
      `UserKnownHostsFile=${knownHostsPath}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'CheckHostIP=no',
      '-o',
      'BatchMode=yes',
      '-o',
      'IdentitiesOnly=yes',
      '-i',
      sshd.privateKeyPath,
      '-p',
      String(sshd.port),
      `${sshd.user}@${sshd.host}`,
      'echo in',
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  return run.status === 0 ? { ok: true } : { ok: false, message: run.stderr };
}

describe('host certificates, as OpenSSH checks them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-hostcert-'));
  let good: Sshd;
  let otherName: Sshd;
  let expired: Sshd;
  let anyName: Sshd;

  before(async () => {
    requireTool('ssh');
    [good, otherName, expired, anyName] = await Promise.all([
      startSshd({ hostCertificate: { principals: ['127.0.0.1', 'web-1.example.com'] } }),
      startSshd({ hostCertificate: { principals: ['web-1.example.com'] } }),
      startSshd({ hostCertificate: { principals: ['127.0.0.1'], validity: '20200101:20200102' } }),
      startSshd({ hostCertificate: {} }),
    ]);
  });
  after(async () => {
    await Promise.all([good, otherName, expired, anyName].map((s) => s?.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  let files = 0;
  /** Judges one known_hosts text both ways and checks they agree; returns the bot's verdict. */
  async function judge(sshd: Sshd, text: string, want: boolean): Promise<Verdict> {
    const path = join(dir, `known_hosts.${++files}`);
    writeFileSync(path, text);
    const [ours, theirs] = [await bot(sshd, text), openssh(sshd, path)];
    assert.equal(theirs.ok, want, `ssh on\n${text}\n${theirs.message ?? ''}`);
    assert.equal(ours.ok, want, `the bot on\n${text}\n${ours.message ?? ''}`);
    return ours;
  }

  it('trusts a host whose certificate a @cert-authority line vouches for, its plain key unpinned', async () => {
    const ca = good.certificateAuthorityLine!;
    await judge(good, `@cert-authority [127.0.0.1]:${good.port} ${ca}\n`, true);
    await judge(good, `# fleet CA\n@cert-authority *.example.com,[127.0.0.*]:* ${ca}\n`, true);
    await judge(good, `@cert-authority * ${ca}\n`, true);
  });

  it('refuses what ssh refuses: a negated pattern, another CA, a revoked CA, a revoked key', async () => {
    const ca = good.certificateAuthorityLine!;
    const negated = await judge(
      good,
      `@cert-authority *,![127.0.0.1]:${good.port},!127.0.0.1 ${ca}\n`,
      false,
    );
    assert.match(negated.message!, /not in known_hosts/);
    // ssh looks a certificate's CA up by [host]:port and then by the bare host: `*` still covers 127.0.0.1.
    await judge(good, `@cert-authority *,![127.0.0.1]:${good.port} ${ca}\n`, true);
    await judge(good, `@cert-authority 127.0.0.1 ${ca}\n`, true);
    await judge(good, `@cert-authority [127.0.0.1]:1,!127.0.0.1 ${ca}\n`, false);
    const other = await judge(good, `@cert-authority * ${otherName.certificateAuthorityLine}\n`, false);
    assert.match(other.message!, /signed by a key that no @cert-authority line for this host names/);
    const revokedCa = await judge(good, `@cert-authority * ${ca}\n@revoked * ${ca}\n`, false);
    assert.match(revokedCa.message!, /certificate authority is marked @revoked/);
    const revokedKey = await judge(
      good,
      `@cert-authority * ${ca}\n@revoked * ${good.hostKeyPublicLine}\n`,
      false,
    );
    assert.match(revokedKey.message!, /@revoked/);
  });

  it('refuses a certificate for other names, and one that has expired; takes one that names no host', async () => {
    const wrong = await judge(otherName, `@cert-authority * ${otherName.certificateAuthorityLine}\n`, false);
    assert.match(wrong.message!, /it names web-1\.example\.com, not 127\.0\.0\.1/);
    const old = await judge(expired, `@cert-authority * ${expired.certificateAuthorityLine}\n`, false);
    assert.match(old.message!, /has expired/);
    await judge(anyName, `@cert-authority * ${anyName.certificateAuthorityLine}\n`, true);
  });

  it('still takes the plain key pinned beside a CA, and refuses a changed one', async () => {
    await judge(good, `${good.knownHostsLine}\n`, true);
    const changed = await judge(good, `[127.0.0.1]:${good.port} ${good.otherHostKeyLine}\n`, false);
    assert.match(changed.message!, /CHANGED/);
  });

  it('fetches the certificate through the jump host too', async () => {
    const hosts = parseHostsFile(
      JSON.stringify({
        hosts: [
          { name: 'bastion', address: good.host, port: good.port, user: good.user, key: good.privateKeyPath },
          {
            name: 'inner',
            address: anyName.host,
            port: anyName.port,
            user: anyName.user,
            key: anyName.privateKeyPath,
            jump: 'bastion',
          },
        ],
      }),
      'hosts.json',
    );
    const ssh = new SshConnections({
      now: systemClock,
      hosts,
      knownHosts: parseKnownHosts(
        `${good.knownHostsLine}\n@cert-authority * ${anyName.certificateAuthorityLine}\n`,
      ),
      log: createLogger({ level: 'silent' }),
      readyTimeoutMs: 8000,
    });
    try {
      const result = await ssh
        .host('inner')
        .exec({ command: 'echo inner', timeoutMs: 5000, maxOutputBytes: 100 });
      assert.equal(result.stdout, 'inner\n');
    } finally {
      await ssh.closeAll();
    }
  });
});
