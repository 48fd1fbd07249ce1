import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findHost, parseHostsFile } from '../../src/config/hosts.ts';

describe('the hosts file', () => {
  const yaml = `
knownHosts: /etc/nightshift/known_hosts
hosts:
  - name: bastion
    address: bastion.example.net
    user: ops
    key: /etc/nightshift/id_ed25519
  - name: web-1
    address: 10.0.0.5
    port: 2222
    user: ops
    jump: bastion
    labels: [web-1:9100, web-1.internal]
`;

  it('reads YAML with defaults, and finds a host by name, address or label', () => {
    const file = parseHostsFile(yaml, 'hosts.yml');
    assert.equal(file.hosts[0]!.port, 22);
    assert.equal(file.hosts[0]!.maxSessions, 4);
    assert.equal(findHost(file, 'web-1:9100')?.name, 'web-1');
    assert.equal(findHost(file, '10.0.0.5')?.name, 'web-1');
    assert.equal(findHost(file, 'nope'), undefined);
  });

  it('reads JSON too', () => {
    const file = parseHostsFile(
      JSON.stringify({ hosts: [{ name: 'a', address: 'a', user: 'u' }] }),
      'hosts.json',
    );
    assert.equal(file.hosts.length, 1);
  });

  it('says what is wrong, with the path of the field', () => {
    assert.throws(
      () =>
        parseHostsFile(
          'hosts:\n  - name: a\n    address: a\n    user: u\n    jump: b\n  - name: a\n    address: x\n    user: u\n    port: 0\n',
          'h.yml',
        ),
      (error: Error) =>
        /hosts\.0\.jump: no host named "b"/.test(error.message) &&
        /hosts\.1\.name: "a" is listed twice/.test(error.message) &&
        /hosts\.1\.port/.test(error.message),
    );
    assert.throws(() => parseHostsFile('hosts: [', 'h.yml'), /h\.yml is not valid YAML/);
    assert.throws(
      () => parseHostsFile('hosts:\n  - name: a\n    address: a\n    user: u\n    pasword: x\n', 'h.yml'),
      /Unrecognized key/,
    );
  });
});
