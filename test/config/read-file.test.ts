import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadHostsFile } from '../../src/config/hosts.ts';
import { loadPolicy } from '../../src/config/policy.ts';
import { readConfigFile } from '../../src/config/read-file.ts';
import { CodedError, ErrorCode } from '../../src/errors.ts';

test('readConfigFile: the text of a file that is there', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'hosts.yml');
  writeFileSync(path, 'hosts: []\n');
  assert.equal(readConfigFile(path, 'hosts file'), 'hosts: []\n');
});

test('a hosts or policy file that cannot be read is a configuration error naming it, its cause kept', () => {
  const missing = join(tmpdir(), `nightshift-missing-${process.pid}`, 'x.yml');
  const attempts: Array<[() => unknown, string]> = [
    [() => loadHostsFile(missing), `cannot read the hosts file ${missing}: ENOENT`],
    [() => loadPolicy(missing, undefined), `cannot read the policy file ${missing}: ENOENT`],
  ];
  for (const [attempt, start] of attempts) {
    assert.throws(attempt, (error: unknown) => {
      assert.ok(error instanceof CodedError);
      assert.equal(error.code, ErrorCode.ConfigInvalid);
      assert.ok(error.message.startsWith(start), error.message);
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENOENT');
      return true;
    });
  }
});
