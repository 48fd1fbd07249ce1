import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse } from 'yaml';
import { runChecks } from '../../src/cli/commands/doctor.ts';
import { lockDataDir } from '../../src/store/adapters/pglite.ts';
import { POSTGRES_ADMIN_URL } from '../helpers/db.ts';
import { credential } from '../helpers/fake-anthropic.ts';
import { FAKE_IDS, type FakeSlack, startFakeSlack } from '../helpers/fake-slack.ts';
import { startSshd } from '../helpers/sshd.ts';
import { ensureTestUser } from '../helpers/users.ts';

const root = new URL('../../', import.meta.url).pathname;
/** The bot scopes manifest.yml asks for: what a workspace grants an app installed from it. */
const MANIFEST_SCOPES = (
  parse(readFileSync(join(root, 'manifest.yml'), 'utf8')) as { oauth_config: { scopes: { bot: string[] } } }
).oauth_config.scopes.bot;
/** A PostgreSQL nobody answers at: the database check fails at once, for tests about other parts. */
const NO_DATABASE = 'postgres://nobody:secret@127.0.0.1:1/none';

describe('nightshift doctor', () => {
  let slack: FakeSlack;
  let anthropic: Server;
  let anthropicUrl: string;
  const dataDir = mkdtempSync(join(tmpdir(), 'nightshift-doctor-'));

  before(async () => {
    slack = await startFakeSlack({
      scopes: MANIFEST_SCOPES,
      channels: {
        C0INCIDENT1: { name: 'incidents' },
        C0OUTSIDE1: { name: 'ops', is_member: false },
        C0ARCHIVE1: { name: 'old-incidents', is_archived: true },
        G0PRIVATE1: { name: 'secret-ops', is_private: true, is_member: false },
      },
    });
    // The Anthropic side: /v1/models answers 200 for the good key, 401 otherwise, as the API does;
    // the key as the SDK presents it (credential: x-api-key or Authorization: Bearer).
    anthropic = createServer((req, res) => {
      const ok = req.url === '/v1/models' && credential(req) === 'sk-ant-good';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? '{"data":[]}' : '{"type":"error","error":{"type":"authentication_error"}}');
    });
    await new Promise<void>((r) => anthropic.listen(0, '127.0.0.1', r));
    anthropicUrl = `http://127.0.0.1:${(anthropic.address() as { port: number }).port}`;
  });
  after(async () => {
    await slack.close();
    await new Promise((r) => anthropic.close(r));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('checks the policy file and the approvers as serve does, and says when nobody can approve', async () => {
    const configuration = async (env: Record<string, string>) =>
      (await runChecks({ DATABASE_URL: NO_DATABASE, ...env })).filter((r) =>
        ['configuration', 'approvers'].includes(r.part),
      );
    const bob = await configuration({ NIGHTSHIFT_APPROVERS: 'U0ALICE1,bob' });
    assert.equal(bob.length, 1);
    assert.equal(bob[0]!.ok, false);
    assert.match(
      bob[0]!.detail,
      /NIGHTSHIFT_APPROVERS: "bob" is neither a Slack user id \(U…\) nor a user group id/,
    );
    const text = join(dataDir, 'policy.txt');
    writeFileSync(text, 'approve everything, please\n');
    const notPolicy = await configuration({ NIGHTSHIFT_POLICY: text });
    assert.equal(notPolicy[0]!.ok, false);
    assert.match(notPolicy[0]!.detail, /policy file .*policy\.txt is not valid/);
    const unknownKey = join(dataDir, 'policy.yml');
    writeFileSync(unknownKey, 'approvers:\n  users: [U0ALICE1]\napprovalRequired: 2\n');
    assert.match((await configuration({ NIGHTSHIFT_POLICY: unknownKey }))[0]!.detail, /approvalRequired/);
    const nobody = await configuration({});
    assert.deepEqual(
      nobody.map((r) => [r.part, r.ok, r.warning]),
      [
        ['configuration', true, undefined],
        ['approvers', null, true],
      ],
    );
    assert.match(nobody[1]!.detail, /^nobody can approve/);
    const good = join(dataDir, 'policy.json');
    writeFileSync(good, JSON.stringify({ approvers: { usergroups: ['S0ONCALL1'] }, approvalsRequired: 2 }));
    const some = await configuration({ NIGHTSHIFT_POLICY: good, NIGHTSHIFT_APPROVERS: 'U0ALICE1' });
    assert.deepEqual(
      some.map((r) => [r.part, r.ok]),
      [
        ['configuration', true],
        ['approvers', true],
      ],
    );
    assert.match(
      some[1]!.detail,
      /1 user\(s\) and 1 user group\(s\) may approve; 2 approval\(s\) per proposal/,
    );
    const tooFew = join(dataDir, 'two.json');
    writeFileSync(tooFew, JSON.stringify({ approvalsRequired: 2 }));
    const short = await configuration({ NIGHTSHIFT_POLICY: tooFew, NIGHTSHIFT_APPROVERS: 'U0ALICE1' });
    assert.equal(short[1]!.warning, true);
    assert.match(short[1]!.detail, /^nobody can approve: a proposal needs 2 approvals .* only 1 user/);
    // serve refuses exactly what doctor failed: the same loadSettings.
    const serve = spawnSync(join(root, 'bin/nightshift'), ['serve'], {
      env: { ...process.env, DATABASE_URL: NO_DATABASE, NIGHTSHIFT_APPROVERS: 'bob', NIGHTSHIFT_HOSTS: '' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(serve.status, 1);
    assert.match(serve.stderr, /NIGHTSHIFT_APPROVERS: "bob"/);
  });

  it('passes every configured part that works, and says what is off', async () => {
    const results = await runChecks({
      NIGHTSHIFT_DATA_DIR: dataDir,
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_APP_TOKEN: slack.appToken,
      SLACK_API_URL: slack.apiUrl,
      INCIDENT_CHANNEL: '#incidents',
      ANTHROPIC_API_KEY: 'sk-ant-good',
      ANTHROPIC_BASE_URL: anthropicUrl,
    });
    const byPart = Object.fromEntries(results.map((r) => [r.part, r]));
    assert.equal(byPart.database!.ok, true);
    assert.equal(byPart.slack!.ok, true);
    assert.match(byPart.slack!.detail, /bot token works/);
    assert.equal(byPart['slack scopes']!.ok, true, byPart['slack scopes']!.detail);
    assert.match(byPart['slack scopes']!.detail, /every scope manifest\.yml asks for/);
    assert.deepEqual(byPart['slack channel'], {
      part: 'slack channel',
      ok: true,
      detail: '#incidents (C0INCIDENT1) exists and the bot is a member',
    });
    assert.equal(byPart['slack socket mode']!.ok, true);
    assert.equal(byPart.anthropic!.ok, true);
    assert.equal(byPart['alert webhooks']!.ok, null);
  });

  it('says in plain words what is wrong', async () => {
    const results = await runChecks({
      NIGHTSHIFT_DATA_DIR: dataDir,
      SLACK_BOT_TOKEN: 'xoxb-wrong',
      SLACK_SIGNING_SECRET: '0123456789abcdef0123456789abcdef',
      SLACK_API_URL: slack.apiUrl,
      ANTHROPIC_API_KEY: 'sk-ant-bad',
      ANTHROPIC_BASE_URL: anthropicUrl,
    });
    const byPart = Object.fromEntries(results.map((r) => [r.part, r]));
    assert.equal(byPart.slack!.ok, false);
    assert.match(byPart.slack!.detail, /Slack refused the bot token \(invalid_auth\)/);
    assert.equal(byPart.anthropic!.ok, false);
    assert.match(byPart.anthropic!.detail, /refused the key \(401\)/);
    const bad = await runChecks({ DATABASE_URL: 'mysql://x' });
    assert.deepEqual(
      bad.map((r) => [r.part, r.ok]),
      [['configuration', false]],
    );
    const unreachable = await runChecks({ DATABASE_URL: 'postgres://nobody:secret@127.0.0.1:1/none' });
    const db = unreachable.find((r) => r.part === 'database')!;
    assert.equal(db.ok, false);
    assert.match(db.detail, /cannot reach PostgreSQL/);
    assert.ok(!db.detail.includes('secret'), 'the password is not printed');
  });

  it('finds INCIDENT_CHANNEL by id too, and says how to fix a channel the bot cannot post to', async () => {
    const channelCheck = async (channel: string) => {
      const results = await runChecks({
        DATABASE_URL: NO_DATABASE,
        SLACK_BOT_TOKEN: slack.botToken,
        SLACK_APP_TOKEN: slack.appToken,
        SLACK_API_URL: slack.apiUrl,
        INCIDENT_CHANNEL: channel,
      });
      return results.find((r) => r.part === 'slack channel')!;
    };
    assert.equal((await channelCheck('C0INCIDENT1')).ok, true);
    const outside = await channelCheck('C0OUTSIDE1');
    assert.equal(outside.ok, false);
    assert.equal(
      outside.detail,
      `the bot is not a member of #ops (C0OUTSIDE1), so every post there fails with not_in_channel: type /invite @${FAKE_IDS.botName} in #ops (or add the app under the channel's Integrations tab)`,
    );
    assert.match((await channelCheck('ops')).detail, /not a member of #ops .*not_in_channel/);
    const hidden = await channelCheck('G0PRIVATE1');
    assert.equal(hidden.ok, false);
    assert.match(
      hidden.detail,
      /G0PRIVATE1: Slack knows no such channel, or it is private and the bot is not in it/,
    );
    const unknown = await channelCheck('#nowhere');
    assert.equal(unknown.ok, false);
    assert.match(unknown.detail, /the bot sees no channel named #nowhere: create it/);
    assert.match((await channelCheck('C0ARCHIVE1')).detail, /#old-incidents \(C0ARCHIVE1\) is archived/);
  });

  it('names the scopes manifest.yml asks for that the bot token was not granted', async () => {
    const narrow = await startFakeSlack({
      scopes: MANIFEST_SCOPES.filter((s) => s !== 'files:write' && s !== 'channels:read'),
    });
    try {
      const results = await runChecks({
        DATABASE_URL: NO_DATABASE,
        SLACK_BOT_TOKEN: narrow.botToken,
        SLACK_APP_TOKEN: narrow.appToken,
        SLACK_API_URL: narrow.apiUrl,
        INCIDENT_CHANNEL: 'C0INCIDENT1',
      });
      const byPart = Object.fromEntries(results.map((r) => [r.part, r]));
      assert.equal(byPart.slack!.ok, true);
      assert.equal(byPart['slack scopes']!.ok, false);
      assert.match(
        byPart['slack scopes']!.detail,
        /^the bot token lacks channels:read, files:write, which manifest\.yml asks for: .*reinstall the app/,
      );
      assert.equal(byPart['slack channel']!.ok, false);
      assert.match(byPart['slack channel']!.detail, /lacks the channels:read scope/);
    } finally {
      await narrow.close();
    }
  });

  it('reports the user evidence scripts run as, and warns a root bot that has none', async () => {
    const sandboxCheck = async (env: Record<string, string>, botUid = 0) =>
      (await runChecks({ DATABASE_URL: NO_DATABASE, NIGHTSHIFT_DATA_DIR: dataDir, ...env }, { botUid })).find(
        (r) => r.part === 'sandbox user',
      )!;
    const unset = await sandboxCheck({});
    assert.equal(unset.ok, null);
    assert.equal(unset.warning, true);
    assert.match(
      unset.detail,
      /^the bot runs as root and NIGHTSHIFT_SANDBOX_USER is not set: approved evidence scripts run as root/,
    );
    assert.deepEqual(await sandboxCheck({}, 1000), {
      part: 'sandbox user',
      ok: true,
      detail: "evidence scripts run as the bot's own user (uid 1000)",
    });
    const missing = await sandboxCheck({ NIGHTSHIFT_SANDBOX_USER: 'nightshift-no-such-user' });
    assert.equal(missing.ok, false);
    assert.match(missing.detail, /there is no user named nightshift-no-such-user on this host; create one/);
    const user = await ensureTestUser();
    // The data directory (mkdtemp: 0700) is above the evidence directory: the user must pass through it.
    chmodSync(dataDir, 0o700);
    const blocked = await sandboxCheck({ NIGHTSHIFT_SANDBOX_USER: user.name });
    assert.equal(blocked.warning, true);
    assert.match(
      blocked.detail,
      new RegExp(
        `${user.name} \\(uid ${user.uid}, gid ${user.gid}\\), but that user cannot pass through ${dataDir}`,
      ),
    );
    chmodSync(dataDir, 0o711);
    try {
      assert.deepEqual(await sandboxCheck({ NIGHTSHIFT_SANDBOX_USER: user.name }), {
        part: 'sandbox user',
        ok: true,
        detail: `evidence scripts run as ${user.name} (uid ${user.uid}, gid ${user.gid})`,
      });
      const notRoot = await sandboxCheck({ NIGHTSHIFT_SANDBOX_USER: user.name }, 1000);
      assert.equal(notRoot.ok, false);
      assert.match(notRoot.detail, /runs as uid 1000, not root/);
    } finally {
      chmodSync(dataDir, 0o700);
    }
  });

  it('says whether the sandbox that runs evidence scripts is installed', async () => {
    const sandboxCheck = async (searchPath: string) =>
      (await runChecks({ DATABASE_URL: NO_DATABASE, NIGHTSHIFT_DATA_DIR: dataDir }, { searchPath })).find(
        (r) => r.part === 'sandbox',
      )!;
    const here = await sandboxCheck(process.env.PATH ?? '');
    assert.equal(here.ok, true, here.detail);
    const empty = mkdtempSync(join(tmpdir(), 'nightshift-no-tools-'));
    try {
      assert.deepEqual(await sandboxCheck(empty), {
        part: 'sandbox',
        ok: false,
        detail:
          'bwrap and prlimit not found on PATH: approved evidence scripts would be refused (apt-get install bubblewrap util-linux)',
      });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('says whether a cgroup can bound all of an evidence script’s processes, and where', async () => {
    const limitsCheck = async (env: Record<string, string>, cgroupRoot?: string) =>
      (
        await runChecks(
          { DATABASE_URL: NO_DATABASE, NIGHTSHIFT_DATA_DIR: dataDir, ...env },
          cgroupRoot ? { cgroupRoot } : {},
        )
      ).find((r) => r.part === 'sandbox limits')!;
    const here = await limitsCheck({ NIGHTSHIFT_SANDBOX_MEMORY_MIB: '512' });
    assert.equal(here.ok, true, here.detail);
    assert.match(
      here.detail,
      /^each evidence script gets a cgroup of its own, cgroup v[12] under \/sys\/fs\/cgroup\/\S+.*: 512 MiB and 128 processes for all its processes together$/,
    );
    assert.deepEqual(await limitsCheck({}, join(dataDir, 'no-cgroups')), {
      part: 'sandbox limits',
      ok: false,
      detail: `no cgroup can bound all of an evidence script's processes, so approved scripts would be refused: there is no cgroup file system at ${join(dataDir, 'no-cgroups')}`,
    });
    const elsewhere = await limitsCheck({ NIGHTSHIFT_SANDBOX_CGROUP: '/nightshift-no-such-cgroup' });
    assert.equal(elsewhere.ok, false);
    assert.match(elsewhere.detail, /nightshift-no-such-cgroup/);
  });

  it('says the embedded store is in use by the running bot instead of failing', () => {
    const held = mkdtempSync(join(tmpdir(), 'nightshift-doctor-held-'));
    // This test process plays the running bot: it holds the data directory's lock.
    const release = lockDataDir(join(held, 'pglite'));
    try {
      const doctor = spawnSync(join(root, 'bin/nightshift'), ['doctor'], {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, NIGHTSHIFT_DATA_DIR: held, DATABASE_URL: '' },
        encoding: 'utf8',
      });
      assert.equal(doctor.status, 0, doctor.stdout + doctor.stderr);
      // A warning is printed as one and does not fail the exit status.
      if (process.getuid?.() === 0)
        assert.match(
          doctor.stdout,
          /^WARN {2}sandbox user: the bot runs as root and NIGHTSHIFT_SANDBOX_USER is not set/m,
        );
      assert.match(
        doctor.stdout,
        new RegExp(
          `^ok  database: embedded store in ${held} is in use by the running bot \\(pid ${process.pid}\\)`,
          'm',
        ),
      );
    } finally {
      release();
      rmSync(held, { recursive: true, force: true });
    }
  });

  it('logs in to each SSH host of the hosts file, and names the one whose key changed', async () => {
    const sshd = await startSshd();
    try {
      const knownHosts = join(dataDir, 'known_hosts');
      writeFileSync(
        knownHosts,
        `${sshd.knownHostsLine}\n[localhost]:${sshd.port} ${sshd.otherHostKeyLine}\n`,
      );
      const hostsFile = join(dataDir, 'hosts.yml');
      const entry = (name: string, address: string) =>
        `  - name: ${name}\n    address: ${address}\n    port: ${sshd.port}\n    user: ${sshd.user}\n    key: ${sshd.privateKeyPath}\n`;
      writeFileSync(
        hostsFile,
        `knownHosts: ${knownHosts}\nhosts:\n${entry('good', '127.0.0.1')}${entry('changed', 'localhost')}`,
      );
      const results = await runChecks({ NIGHTSHIFT_DATA_DIR: dataDir, NIGHTSHIFT_HOSTS: hostsFile });
      const byPart = Object.fromEntries(results.map((r) => [r.part, r]));
      assert.equal(byPart['ssh good']!.ok, true);
      assert.match(byPart['ssh good']!.detail, new RegExp(`logged in as ${sshd.user}, host key pinned`));
      assert.equal(byPart['ssh changed']!.ok, false);
      assert.match(byPart['ssh changed']!.detail, /has CHANGED/);
    } finally {
      await sshd.stop();
    }
  });

  it('checks the role each SQL database runs as and prints what to revoke', {
    skip: POSTGRES_ADMIN_URL ? false : 'set POSTGRES_ADMIN_URL',
  }, async () => {
    const superuser = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
    await superuser.connect();
    const suffix = Math.random().toString(36).slice(2, 8);
    const reader = `ns_reader_${suffix}`;
    const risky = `ns_risky_${suffix}`;
    const urlFor = (role: string) => {
      const url = new URL(POSTGRES_ADMIN_URL!);
      url.username = role;
      url.password = 'pw-doctor-0123';
      return url.toString();
    };
    try {
      await superuser.query(`CREATE ROLE ${reader} LOGIN PASSWORD 'pw-doctor-0123'`);
      await superuser.query(`CREATE ROLE ${risky} LOGIN REPLICATION PASSWORD 'pw-doctor-0123'`);
      await superuser.query(`GRANT pg_read_server_files, pg_execute_server_program TO ${risky}`);
      await superuser.query(`GRANT CREATE ON SCHEMA public TO ${risky}`);
      const results = await runChecks({
        DATABASE_URL: NO_DATABASE,
        NIGHTSHIFT_SQL_DATABASES: 'good,risky,root',
        NIGHTSHIFT_SQL_GOOD_URL: urlFor(reader),
        NIGHTSHIFT_SQL_RISKY_URL: urlFor(risky),
        NIGHTSHIFT_SQL_ROOT_URL: POSTGRES_ADMIN_URL,
      });
      const sql = results.filter((r) => r.part.startsWith('sql '));
      const good = sql.find((r) => r.part === 'sql good' && r.ok !== null)!;
      assert.equal(good.ok, true, good.detail);
      assert.ok(
        sql.some((r) => r.part === 'sql good' && r.warning && /statement_timeout/.test(r.detail)),
        'a role without time limits of its own is warned',
      );
      const bad = sql.find((r) => r.part === 'sql risky')!;
      assert.equal(bad.ok, false);
      assert.match(bad.detail, new RegExp(`ALTER ROLE "${risky}" NOREPLICATION`));
      assert.match(bad.detail, new RegExp(`REVOKE pg_read_server_files FROM "${risky}"`));
      assert.match(bad.detail, new RegExp(`REVOKE pg_execute_server_program FROM "${risky}"`));
      assert.match(bad.detail, new RegExp(`REVOKE CREATE ON SCHEMA "public" FROM "${risky}", PUBLIC`));
      const root = sql.find((r) => r.part === 'sql root')!;
      assert.equal(root.ok, false);
      assert.match(root.detail, /is a superuser.*NOSUPERUSER/);
      for (const r of sql) assert.ok(!r.detail.includes('pw-doctor-0123'), 'no password is printed');
    } finally {
      await superuser.query(`REVOKE CREATE ON SCHEMA public FROM ${risky}`).catch(() => {});
      await superuser.query(`DROP ROLE IF EXISTS ${reader}`);
      await superuser.query(`DROP ROLE IF EXISTS ${risky}`);
      await superuser.end();
    }
  });
});
