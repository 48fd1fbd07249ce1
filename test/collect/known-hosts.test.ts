import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  entryMatches,
  knownHostsName,
  parseCertificate,
  parseKnownHosts,
  verifyHostCertificate,
  verifyHostKey,
} from '../../src/collect/known-hosts.ts';
import { requireTool } from '../helpers/reference-tools.ts';

/** Real keys and a real hashed known_hosts, made by OpenSSH's ssh-keygen. */
function keys() {
  requireTool('ssh-keygen');
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-kh-'));
  const make = (name: string) => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)]);
    return readFileSync(join(dir, `${name}.pub`), 'utf8')
      .trim()
      .split(' ');
  };
  const [type, key] = make('server');
  const [, other] = make('other');
  return { dir, type: type!, key: key!, other: other! };
}

describe('known_hosts', () => {
  const k = keys();
  after(() => rmSync(k.dir, { recursive: true, force: true }));

  it('accepts the pinned key and refuses an unknown host and a changed key, saying which', () => {
    const entries = parseKnownHosts(
      `# comment\n[127.0.0.1]:2222 ${k.type} ${k.key}\nweb-1,10.0.0.5 ${k.type} ${k.key}\n`,
    );
    assert.deepEqual(verifyHostKey(entries, '127.0.0.1', 2222, Buffer.from(k.key, 'base64')), { ok: true });
    assert.deepEqual(verifyHostKey(entries, '10.0.0.5', 22, Buffer.from(k.key, 'base64')), { ok: true });
    const changed = verifyHostKey(entries, '127.0.0.1', 2222, Buffer.from(k.other, 'base64'));
    assert.equal(changed.ok, false);
    assert.match(!changed.ok ? changed.message : '', /has CHANGED since it was pinned/);
    const unknown = verifyHostKey(entries, '127.0.0.1', 22, Buffer.from(k.key, 'base64'));
    assert.match(!unknown.ok ? unknown.message : '', /127\.0\.0\.1 is not in known_hosts/);
  });

  it('reads hashed entries as ssh-keygen -H writes them', () => {
    const file = join(k.dir, 'known_hosts');
    writeFileSync(file, `[db-1.internal]:2200 ${k.type} ${k.key}\n`);
    execFileSync('ssh-keygen', ['-q', '-H', '-f', file]);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^\|1\|/);
    const entries = parseKnownHosts(text);
    assert.deepEqual(verifyHostKey(entries, 'db-1.internal', 2200, Buffer.from(k.key, 'base64')), {
      ok: true,
    });
    assert.equal(verifyHostKey(entries, 'db-2.internal', 2200, Buffer.from(k.key, 'base64')).ok, false);
  });

  it('refuses a key marked @revoked', () => {
    const entries = parseKnownHosts(`@revoked * ${k.type} ${k.key}\nweb-1 ${k.type} ${k.key}\n`);
    const verdict = verifyHostKey(entries, 'web-1', 22, Buffer.from(k.key, 'base64'));
    assert.match(!verdict.ok ? verdict.message : '', /@revoked/);
  });

  it('names hosts as ssh does', () => {
    assert.equal(knownHostsName('web-1', 22), 'web-1');
    assert.equal(knownHostsName('web-1', 2222), '[web-1]:2222');
  });

  it('matches hosts to lines exactly as ssh-keygen -F does: wildcards, negation, case, ports, markers', () => {
    const key = `${k.type} ${k.key}`;
    const lines = [
      `Web-1.Example.com ${key}`,
      `*.example.com,!bad.example.com ${key}`,
      `[web-1.example.com]:2222 ${key}`,
      `@cert-authority *.EXAMPLE.com ${key}`,
      `@revoked bad.example.com ${key}`,
      `!*.x.com,a.x.com ${key}`,
      `a.x.com,!*.x.com ${key}`,
      `db-?.internal,!db-9.internal ${key}`,
      `[db-*.internal]:* ${key}`,
      `@cert-authority *,!*.example.com ${key}`,
      `@unknown-marker web-1.example.com ${key}`,
      `10.0.0.* ${key}`,
      `!10.0.0.5 ${key}`,
    ];
    const file = join(k.dir, 'known_hosts.match');
    writeFileSync(file, `${lines.join('\n')}\n# the end\n`);
    const entries = parseKnownHosts(readFileSync(file, 'utf8'));
    const names = [
      'web-1.example.com',
      'WEB-1.example.COM',
      'bad.example.com',
      'example.com',
      '[web-1.example.com]:2222',
      '[web-1.example.com]:2223',
      'a.x.com',
      'b.x.com',
      'db-1.internal',
      'db-9.internal',
      'db-10.internal',
      '[db-1.internal]:2200',
      '10.0.0.5',
      '10.0.0.55',
      'other.host',
    ];
    for (const name of names) {
      const found = execFileSync('ssh-keygen', ['-F', name, '-f', file], { encoding: 'utf8' }).match(
        /found: line \d+/g,
      );
      const want = (found ?? []).map((m) => Number(m.slice('found: line '.length)));
      const got = entries.filter((e) => entryMatches(e, name)).map((e) => e.line);
      assert.deepEqual(got, want, name);
    }
  });

  it('refuses a host whose only pattern that matches is negated, where it used to accept it', () => {
    const entries = parseKnownHosts(`*.example.com,!bad.example.com ${k.type} ${k.key}\n`);
    assert.equal(verifyHostKey(entries, 'good.example.com', 22, Buffer.from(k.key, 'base64')).ok, true);
    const bad = verifyHostKey(entries, 'bad.example.com', 22, Buffer.from(k.key, 'base64'));
    assert.equal(bad.ok, false);
    assert.match(!bad.ok ? bad.message : '', /bad\.example\.com is not in known_hosts/);
  });

  it('checks host certificates ssh-keygen signs with ed25519, ECDSA and RSA CAs', () => {
    const now = new Date();
    for (const [type, bits] of [
      ['ed25519', []],
      ['ecdsa', ['-b', '384']],
      ['rsa', ['-b', '2048']],
    ] as const) {
      const ca = join(k.dir, `ca-${type}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, ...bits, '-N', '', '-f', ca]);
      const caLine = readFileSync(`${ca}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
      const sign = (name: string, args: string[]) => {
        execFileSync('ssh-keygen', ['-q', '-s', ca, '-I', name, ...args, join(k.dir, 'server.pub')]);
        const [, blob] = readFileSync(join(k.dir, 'server-cert.pub'), 'utf8').split(' ');
        return Buffer.from(blob!, 'base64');
      };
      const presented = Buffer.from(k.key, 'base64');
      const entries = parseKnownHosts(`@cert-authority *.example.com ${caLine}\n`);
      const hostCert = sign('host', ['-h', '-n', 'web-1.example.com', '-z', '42']);
      const parsed = parseCertificate(hostCert);
      assert.equal(parsed.certType, 'host');
      assert.equal(parsed.serial, 42n);
      assert.deepEqual(parsed.principals, ['web-1.example.com']);
      assert.ok(parsed.publicKey.equals(presented));
      const check = (cert: Buffer, host = 'web-1.example.com', key = presented, at = now) =>
        verifyHostCertificate(entries, host, 22, key, cert, at);
      assert.deepEqual(check(hostCert), { ok: true, via: 'certificate' }, type);
      const refused = (verdict: ReturnType<typeof check>) => (verdict.ok ? '' : verdict.message);
      assert.match(refused(check(hostCert, 'web-2.example.com')), /names web-1\.example\.com, not web-2/);
      assert.match(refused(check(hostCert, 'web-1.example.org')), /no @cert-authority line/);
      assert.match(refused(check(hostCert, undefined, Buffer.from(k.other, 'base64'))), /another key/);
      const soon = sign('soon', ['-h', '-V', '20990101:20990102']);
      assert.match(refused(check(soon)), /not valid yet/);
      assert.deepEqual(check(soon, undefined, undefined, new Date('2099-01-01T12:00:00Z')).ok, true);
      const tampered = Buffer.from(hostCert);
      const at = tampered.indexOf('web-1.example.com') + 4;
      tampered[at] = tampered[at]! ^ 1;
      assert.match(refused(check(tampered, 'web-1.example.com')), /signature does not verify|names/);
      assert.match(refused(check(sign('user', ['-n', 'web-1.example.com']))), /user certificate/);
      assert.match(
        refused(check(sign('opt', ['-h', '-n', 'web-1.example.com', '-O', 'force-command=true']))),
        /critical options|user certificate/,
      );
      assert.match(refused(check(sign('old', ['-h', '-V', '20200101:20200102']))), /expired/);
    }
  });
});
