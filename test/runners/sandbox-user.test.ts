import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CodedError } from '../../src/errors.ts';
import {
  groupSharersWithGetent,
  lookupWithId,
  resolveSandboxUser,
  sandboxUserStatus,
  shareEvidence,
  type UserLookup,
} from '../../src/runners/sandbox-user.ts';
import { ensureTestUser, type TestUser } from '../helpers/users.ts';

/** NIGHTSHIFT_SANDBOX_USER: resolved through a fake lookup, then through `id` for a real user. */
describe('the sandbox user', () => {
  const users: Record<string, { uid: number; gid: number }> = {
    sandbox: { uid: 1500, gid: 1600 },
    '1500': { uid: 1500, gid: 1600 },
    root: { uid: 0, gid: 0 },
  };
  const lookup: UserLookup = (user) => users[user];
  let real: TestUser;
  let work: string;

  before(async () => {
    real = await ensureTestUser();
    work = mkdtempSync(join(tmpdir(), 'nightshift-sandbox-user-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const refused = (spec: string, message: RegExp) =>
    assert.throws(
      () => resolveSandboxUser(spec, lookup),
      (error: CodedError) => error.code === 'nightshift_config_invalid' && message.test(error.message),
    );

  it('resolves a name or a uid to the user and its primary group, and takes uid:gid as given', () => {
    assert.deepEqual(resolveSandboxUser('sandbox', lookup), { uid: 1500, gid: 1600, label: 'sandbox' });
    assert.deepEqual(resolveSandboxUser('1500', lookup), { uid: 1500, gid: 1600, label: '1500' });
    assert.deepEqual(resolveSandboxUser('2000:2001', lookup), { uid: 2000, gid: 2001, label: '2000:2001' });
  });

  it('says clearly when the user does not exist, and refuses root', () => {
    refused('nobody-here', /there is no user named nobody-here on this host; create one \(useradd/);
    refused('4242', /uid 4242 has no user on this host, so its group is unknown; give it as 4242:<gid>/);
    refused('root', /root \(uid 0, gid 0\); name an unprivileged user/);
    refused('0:1500', /is root/);
    refused('1500:0', /is root/);
    refused('a b', /must be a user name or uid\[:gid\]/);
  });

  it('finds a real user through id', () => {
    assert.deepEqual(resolveSandboxUser(real.name), { uid: real.uid, gid: real.gid, label: real.name });
    assert.deepEqual(resolveSandboxUser(String(real.uid)), {
      uid: real.uid,
      gid: real.gid,
      label: String(real.uid),
    });
    assert.equal(lookupWithId('nightshift-no-such-user'), undefined);
    assert.throws(() => resolveSandboxUser('root'), /is root/);
  });

  it('warns a root bot without one, and refuses one a bot that is not root cannot switch to', async () => {
    const evidenceDir = join(work, 'evidence');
    const unset = await sandboxUserStatus({ spec: undefined, botUid: 0, evidenceDir });
    assert.equal(unset.level, 'warn');
    assert.match(unset.message, /runs as root and NIGHTSHIFT_SANDBOX_USER is not set/);
    assert.equal((await sandboxUserStatus({ spec: undefined, botUid: 1000, evidenceDir })).level, 'ok');
    const notRoot = await sandboxUserStatus({ spec: 'sandbox', botUid: 1000, evidenceDir, lookup });
    assert.equal(notRoot.level, 'fail');
    assert.match(
      notRoot.message,
      /the bot runs as uid 1000, not root, and cannot start scripts as another user/,
    );
    const missing = await sandboxUserStatus({ spec: 'ghost', botUid: 0, evidenceDir, lookup });
    assert.deepEqual(missing.level, 'fail');
    assert.match(missing.message, /no user named ghost/);
  });

  it('warns when the user is nobody, or its group is shared with other accounts', async () => {
    // Under a directory that does not exist yet, so the pass-through check has nothing to say.
    const evidenceDir = join(work, 'not-yet', 'evidence');
    const alone = () => [];
    const nobody = await sandboxUserStatus({ spec: '65534:65534', botUid: 0, evidenceDir, sharers: alone });
    assert.equal(nobody.level, 'warn');
    assert.match(nobody.message, /nobody or nogroup, which other services run as too/);
    const shared = await sandboxUserStatus({
      spec: '1500:100',
      botUid: 0,
      evidenceDir,
      sharers: (gid, except) => (gid === 100 && except === 1500 ? ['alice', 'backup'] : []),
    });
    assert.equal(shared.level, 'warn');
    assert.match(shared.message, /group 100 also has alice, backup, who could read the evidence/);
    assert.equal(
      (await sandboxUserStatus({ spec: '1500:1500', botUid: 0, evidenceDir, sharers: alone })).level,
      'ok',
    );
    // The real lookup: the test user has a group of its own (useradd --user-group).
    assert.deepEqual(groupSharersWithGetent(real.gid, real.uid), []);
  });

  it('shares one incident’s evidence with the user’s group, read-only, and lets it through the root', async () => {
    const root = join(work, 'share');
    const incident = join(root, 'incident-3');
    mkdirSync(join(incident, 'run-1'), { recursive: true });
    mkdirSync(join(root, 'incident-4'));
    writeFileSync(join(incident, 'run-1', 'core'), 'x', { mode: 0o600 });
    symlinkSync('/etc/shadow', join(incident, 'run-1', 'link'));
    chmodSync(root, 0o700);
    const shadow = statSync('/etc/shadow');
    await shareEvidence(root, incident, { ...real, label: real.name });
    const of = (path: string) => {
      const s = statSync(path);
      return [s.mode & 0o7777, s.gid];
    };
    assert.deepEqual(of(root), [0o710, real.gid]);
    assert.deepEqual(of(incident), [0o750, real.gid]);
    assert.deepEqual(of(join(incident, 'run-1')), [0o750, real.gid]);
    assert.deepEqual(of(join(incident, 'run-1', 'core')), [0o640, real.gid]);
    assert.notEqual(statSync(join(root, 'incident-4')).gid, real.gid, 'other incidents are not shared');
    assert.deepEqual(of('/etc/shadow'), [shadow.mode & 0o7777, shadow.gid], 'a symlink is not followed');
  });
});
