import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { knownHostsName, parseKnownHosts, verifyHostKey } from '../../src/collect/known-hosts.ts';
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
});
