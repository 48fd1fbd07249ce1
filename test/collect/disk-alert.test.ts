import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/env.ts';
import { createLogger } from '../../src/log.ts';
import { type Bot, startBot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { makeCCore } from '../helpers/cores.ts';
import { testDatabases } from '../helpers/db.ts';
import { writeDockerStandIn } from '../helpers/docker-stand-in.ts';
import { FAKE_IDS, type FakeSlack, startFakeSlack } from '../helpers/fake-slack.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';
import { until } from '../helpers/wait.ts';

/**
 * The whole collection on a disk alert: Alertmanager's payload for web-1 opens an incident, the
 * bot collects on web-1 over SSH (a real sshd, a docker stand-in holding a real core), and the
 * findings land in the incident's thread in Slack (the fake).
 */
const TOKEN = 'alert-token-0123456789abcdef';
const alertmanager = readFileSync(
  new URL('../alerts/fixtures/alertmanager-disk.json', import.meta.url),
  'utf8',
);

describe('a disk alert starts collection on the host', () => {
  let work: string;
  let sshd: Sshd;
  let slack: FakeSlack;
  let db: Db;
  let bot: Bot;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nightshift-disk-alert-'));
    chmodSync(work, 0o755);
    const core = await makeCCore(join(work, 'made'), 'abort');
    writeDockerStandIn(join(work, 'bin'), join(work, 'containers'), [
      {
        id: '0a1b2c3d4e5f',
        name: 'web',
        running: true,
        size: '2.1GB (virtual 3GB)',
        files: { [`/app/core.${core.pid}`]: readFileSync(core.path) },
      },
    ]);
    for (const dir of ['containers', 'containers/0a1b2c3d4e5f', 'containers/0a1b2c3d4e5f/app'])
      chmodSync(join(work, dir), 0o755);
    sshd = await startSshd({ binDir: join(work, 'bin') });
    const hostsPath = join(work, 'hosts.yml');
    writeFileSync(
      hostsPath,
      `knownHosts: ${sshd.knownHostsPath}\nhosts:\n  - name: web-1\n    address: ${sshd.host}\n    port: ${sshd.port}\n    user: ${sshd.user}\n    key: ${sshd.privateKeyPath}\n    labels: [web-1:9100]\n`,
    );
    slack = await startFakeSlack();
    db = await testDatabases()[0]!.open();
    bot = await startBot({
      config: {
        ...loadConfig({
          SLACK_BOT_TOKEN: slack.botToken,
          SLACK_SIGNING_SECRET: '0123456789abcdef0123456789abcdef',
          SLACK_API_URL: slack.apiUrl,
          INCIDENT_CHANNEL: FAKE_IDS.channel,
          ALERT_WEBHOOK_TOKEN: TOKEN,
          NIGHTSHIFT_HOSTS: hostsPath,
        }),
        PORT: 0,
      },
      db,
      log: createLogger({ level: 'silent' }),
    });
  });
  after(async () => {
    await bot?.close();
    await db?.close();
    await slack?.close();
    await sshd?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('posts what it found on web-1 to the incident thread', async () => {
    const res = await fetch(`http://127.0.0.1:${bot.port}/alerts/alertmanager`, {
      method: 'POST',
      body: alertmanager,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(res.status, 202);
    const root = await until('the root', () =>
      (slack.messages.get(FAKE_IDS.channel) ?? []).find((m) => /Disk \/ filling on web-1/.test(m.text ?? '')),
    );
    const thread = await until(
      'the collection findings',
      () => {
        const replies = slack.thread(FAKE_IDS.channel, root.ts);
        return replies.some((m) => /Collection on web-1 done/.test(m.text ?? '')) ? replies : undefined;
      },
      60_000,
    );
    const texts = thread.map((m) => m.text ?? '');
    assert.ok(texts.some((t) => /Collecting on web-1 over SSH/.test(t)));
    assert.ok(
      texts.some((t) => /1 core dump in containers/.test(t)),
      texts.join('\n---\n'),
    );
    assert.ok(texts.some((t) => /How this host writes core dumps/.test(t)));
    const { rows } = await db.executeSql<{ n: number }>(
      `SELECT count(*)::int AS n FROM findings WHERE kind = 'collect-host'`,
    );
    assert.ok(rows[0]!.n >= 3);
  });
});
