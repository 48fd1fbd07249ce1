import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/env.ts';
import { type Component, startComponents } from '../src/lifecycle.ts';
import { createLogger } from '../src/log.ts';
import { buildBot, startBot } from '../src/main.ts';
import { startFakeSlack } from './helpers/fake-slack.ts';
import { type Sshd, startSshd } from './helpers/sshd.ts';
import { until } from './helpers/wait.ts';

const log = createLogger({ level: 'silent' });

/** The part as it is, recording its starts and stops in `events`. */
const recorded = (component: Component, events: string[]): Component => ({
  name: component.name,
  async start() {
    events.push(`start ${component.name}`);
    await component.start();
  },
  async stop() {
    events.push(`stop ${component.name}`);
    await component.stop();
  },
});

const disconnects = (sshd: Sshd) =>
  readFileSync(sshd.logPath, 'utf8').match(/Disconnected from user|Connection closed by/g)?.length ?? 0;

describe('the bot starts its parts in order and stops the started ones in reverse', () => {
  let sshd: Sshd;
  let work: string;
  let config: ReturnType<typeof loadConfig>;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nightshift-main-'));
    sshd = await startSshd();
    const hostsPath = join(work, 'hosts.yml');
    writeFileSync(
      hostsPath,
      `knownHosts: ${sshd.knownHostsPath}\nhosts:\n  - name: web-1\n    address: ${sshd.host}\n    port: ${sshd.port}\n    user: ${sshd.user}\n    key: ${sshd.privateKeyPath}\n`,
    );
    // The bot opens its own store (PGlite in the data directory), so that it is its to close.
    config = {
      ...loadConfig({ NIGHTSHIFT_HOSTS: hostsPath, NIGHTSHIFT_DATA_DIR: join(work, 'data') }),
      PORT: 0,
    };
  });
  after(async () => {
    await sshd.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('a failure after the HTTP server and SSH started (the workers) closes the port, SSH, the queue and the store', async () => {
    const built = await buildBot({ config, log });
    const { services } = built;
    const events: string[] = [];
    let port = 0;
    const closedBefore = disconnects(sshd);
    // The workers' registration fails once the HTTP server answers and a host's connection is open.
    const failingWorkers: Component = {
      name: 'workers',
      async start() {
        port = built.receiver.port;
        assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
        const answer = await services.ssh!.host('web-1').exec({
          command: 'echo up',
          timeoutMs: 10_000,
          maxOutputBytes: 1024,
        });
        assert.equal(answer.stdout.trim(), 'up');
        throw new Error('could not register the workers');
      },
      async stop() {
        throw new Error('a part that did not start is not stopped');
      },
    };
    const components = built.components.map((c) =>
      recorded(c.name === 'workers' ? failingWorkers : c, events),
    );
    await assert.rejects(startComponents(components, log), /could not register the workers/);
    assert.deepEqual(events, [
      'start store',
      'start queue',
      'start http',
      'start ssh',
      'start workers',
      'stop ssh',
      'stop http',
      'stop queue',
      'stop store',
    ]);
    // What each stop did, seen from outside: nothing listens, sshd saw the client leave, the
    // queue takes no job and the store answers no query.
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), /fetch failed/);
    await until('sshd to see the connection closed', () => disconnects(sshd) > closedBefore);
    await assert.rejects(built.boss.send('collect-host', { incidentId: 1, host: 'web-1' }));
    await assert.rejects(services.db.executeSql('SELECT 1'));
  });

  it('with Slack on, a failure after the workers started stops them, the Slack app, the queue and the store', async () => {
    const slack = await startFakeSlack();
    try {
      const built = await buildBot({
        config: {
          ...config,
          ...loadConfig({
            SLACK_BOT_TOKEN: slack.botToken,
            SLACK_SIGNING_SECRET: '0123456789abcdef0123456789abcdef',
            SLACK_API_URL: slack.apiUrl,
            NIGHTSHIFT_DATA_DIR: config.NIGHTSHIFT_DATA_DIR,
          }),
          PORT: 0,
        },
        log,
      });
      const events: string[] = [];
      const failingSweeper: Component = {
        name: 'sweeper',
        async start() {
          // Bolt checks the bot token at once (auth.test) without waiting for it; answered first,
          // it is not left to fail against a fake Slack closed after the test.
          await until('Bolt to check the bot token', () => slack.callsTo('auth.test').length > 0);
          throw new Error('could not start the sweeper');
        },
        stop: async () => {},
      };
      const components = built.components.map((c) =>
        recorded(c.name === 'sweeper' ? failingSweeper : c, events),
      );
      await assert.rejects(startComponents(components, log), /could not start the sweeper/);
      assert.deepEqual(events, [
        'start store',
        'start queue',
        'start slack',
        'start ssh',
        'start workers',
        'start sweeper',
        'stop workers',
        'stop ssh',
        'stop slack',
        'stop queue',
        'stop store',
      ]);
      await assert.rejects(fetch(`http://127.0.0.1:${built.receiver.port}/healthz`), /fetch failed/);
      await assert.rejects(built.boss.send('collect-host', { incidentId: 1, host: 'web-1' }));
      await assert.rejects(built.services.db.executeSql('SELECT 1'));
    } finally {
      await slack.close();
    }
  });

  it('started, it serves and close() stops everything it started', async () => {
    const bot = await startBot({ config, log });
    assert.equal((await fetch(`http://127.0.0.1:${bot.port}/healthz`)).status, 200);
    await bot.close();
    await assert.rejects(fetch(`http://127.0.0.1:${bot.port}/healthz`), /fetch failed/);
    await assert.rejects(bot.db.executeSql('SELECT 1'));
    // A second close is the first's.
    await bot.close();
  });
});
