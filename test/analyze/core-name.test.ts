import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCoreName } from '../../src/analyze/core-name.ts';

describe('parseCoreName', () => {
  it("reads systemd-coredump's names, comm unescaped and cut to 15 bytes, with or without compression", () => {
    const boot = '8c3e2bfa0a5d4c3c9d7e1f2a3b4c5d6e';
    for (const ext of ['', '.zst', '.xz', '.lz4']) {
      assert.deepEqual(
        parseCoreName(`core.gunicorn\\x3a\\x20worker.33.${boot}.81234.1764547200000000${ext}`),
        {
          writer: 'systemd-coredump',
          comm: 'gunicorn: worke',
          uid: 33,
          bootId: boot,
          pid: 81234,
          time: new Date('2025-12-01T00:00:00.000Z'),
        },
      );
    }
    // A comm holding dots (escaped as \x2e) and a time no systemd wrote.
    assert.deepEqual(parseCoreName(`core.python3\\x2e12.0.${boot}.7.12`)?.comm, 'python3.12');
    assert.equal(parseCoreName(`core.python3\\x2e12.0.${boot}.7.12`)?.time, null);
  });

  it("reads apport's names: pid and uid, no name or time", () => {
    assert.deepEqual(
      parseCoreName('core._usr_bin_node.0.c2c91690-dade-4dba-ad0e-c9d72f5fa11a.1117038.50429709'),
      {
        writer: 'apport',
        comm: null,
        uid: 0,
        bootId: 'c2c91690-dade-4dba-ad0e-c9d72f5fa11a',
        pid: 1117038,
        time: null,
      },
    );
  });

  it('leaves other names alone', () => {
    for (const name of [
      'core',
      'core.1234',
      'core.1234.gz',
      'core.sleep.1000.nothex.1.2.zst',
      'core.sleep.1000.8c3e2bfa0a5d4c3c9d7e1f2a3b4c5d6e.0.1764547200000000.zst',
      'core.sleep.1000.8c3e2bfa0a5d4c3c9d7e1f2a3b4c5d6e.1.1764547200000000.gz',
    ]) {
      assert.equal(parseCoreName(name), undefined, name);
    }
  });
});
