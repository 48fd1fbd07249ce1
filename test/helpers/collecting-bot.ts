import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bot } from '../../src/main.ts';
import type { Db } from '../../src/store/db.ts';
import { startTestBot } from './bot.ts';
import { testDatabases } from './db.ts';
import { type FakeSlack, startFakeSlack } from './fake-slack.ts';
import { type Podman, startPodman } from './podman.ts';
import { APPROVER } from './proposals.ts';
import { type HostEntry, writeHostsFile } from './ssh-hosts.ts';
import { type Sshd, startSshd } from './sshd.ts';

export interface CollectingBot {
  /** A directory the ssh user can enter (0755): where cores are searched; the bot's data is below it. */
  work: string;
  podman: Podman;
  sshd: Sshd;
  slack: FakeSlack;
  db: Db;
  bot: Bot;
  /** Stops everything in reverse of starting it. */
  close(): Promise<void>;
}

export interface CollectingBotOptions {
  /** The work directory's name prefix, after nightshift-. */
  name: string;
  /** Makes the containers whose cores the bot finds, on the test's Podman engine. */
  containers(podman: Podman): Promise<void>;
  /** The hosts the bot reaches through the sshd, given the work directory. */
  hosts(work: string): HostEntry[];
}

/**
 * The whole bot collecting from a real host: containers of a real Podman engine crashed and wrote
 * cores, a real sshd whose commands reach that engine with the Docker CLI, the bot on PGlite
 * against the fake Slack with APPROVER as approver and the hosts file naming that sshd. What the
 * disk-alert and pull-analysis tests share; whatever fails while it starts stops what had started.
 */
export async function startCollectingBot(options: CollectingBotOptions): Promise<CollectingBot> {
  const stops: Array<() => unknown> = [];
  const close = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    const work = mkdtempSync(join(tmpdir(), `nightshift-${options.name}-`));
    stops.push(() => rmSync(work, { recursive: true, force: true }));
    chmodSync(work, 0o755);
    const podman = await startPodman();
    stops.push(() => podman.stop());
    await options.containers(podman);
    const sshd = await startSshd({ env: podman.clientEnv });
    stops.push(() => sshd.stop());
    const hostsPath = writeHostsFile(join(work, 'hosts.json'), sshd, options.hosts(work));
    const slack = await startFakeSlack();
    stops.push(() => slack.close());
    const db = await testDatabases()[0]!.open();
    stops.push(() => db.close());
    const bot = await startTestBot({
      db,
      slack,
      env: {
        NIGHTSHIFT_HOSTS: hostsPath,
        NIGHTSHIFT_APPROVERS: APPROVER,
        NIGHTSHIFT_DATA_DIR: join(work, 'data'),
      },
    });
    stops.push(() => bot.close());
    return { work, podman, sshd, slack, db, bot, close };
  } catch (error) {
    await close();
    throw error;
  }
}
