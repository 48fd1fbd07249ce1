import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runChecks } from '../../src/cli/commands/doctor.ts';
import { type FakeSlack, startFakeSlack } from '../helpers/fake-slack.ts';
import { startSshd } from '../helpers/sshd.ts';

describe('nightshift doctor', () => {
  let slack: FakeSlack;
  let anthropic: Server;
  let anthropicUrl: string;
  const dataDir = mkdtempSync(join(tmpdir(), 'nightshift-doctor-'));

  before(async () => {
    slack = await startFakeSlack();
    // The Anthropic side: /v1/models answers 200 for the good key, 401 otherwise, as the API does.
    anthropic = createServer((req, res) => {
      const ok = req.url === '/v1/models' && req.headers['x-api-key'] === 'sk-ant-good';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? '{"data":[]}' : '{"type":"error","error":{"type":"authentication_error"}}');
    });
    await new Promise<void>((r) => anthropic.listen(0, '127.0.0.1', r));
    anthropicUrl = `http://127.0.0.1:${(anthropic.address() as { port: number }).port}`;
  });
  after(async () => {
    await slack.close();
    await new Promise((r) => anthropic.close(r));
  });

  it('passes every configured part that works, and says what is off', async () => {
    const results = await runChecks({
      NIGHTSHIFT_DATA_DIR: dataDir,
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_APP_TOKEN: slack.appToken,
      SLACK_API_URL: slack.apiUrl,
      ANTHROPIC_API_KEY: 'sk-ant-good',
      ANTHROPIC_BASE_URL: anthropicUrl,
    });
    const byPart = Object.fromEntries(results.map((r) => [r.part, r]));
    assert.equal(byPart.database!.ok, true);
    assert.equal(byPart.slack!.ok, true);
    assert.match(byPart.slack!.detail, /bot token works/);
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
});
