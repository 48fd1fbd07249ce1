import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openPglite } from '../../src/store/adapters/pglite.ts';
import { ALERT_TOKEN, NIGHTSHIFT_BIN, serveEnv, suiteSlack } from '../helpers/bot.ts';
import { freePort, until } from '../helpers/wait.ts';

/** `nightshift serve` stops within its deadline on SIGTERM, even while a Slack call hangs. */

describe('nightshift serve', () => {
  const fakeSlack = suiteSlack();
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-serve-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits soon after SIGTERM while a post hangs, and gives its claim back', async () => {
    const slack = fakeSlack();
    // Every post hangs: the bot's own deadline on it is 10 s, longer than this test waits.
    const stopHanging = slack.failWhen('chat.postMessage', () => true, { hang: true });
    const data = join(dir, 'data');
    const port = await freePort();
    const bot = spawn(NIGHTSHIFT_BIN, ['serve'], { env: serveEnv(slack, data, port), stdio: 'ignore' });
    try {
      const url = `http://127.0.0.1:${port}`;
      await until(
        'the bot to answer',
        async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok,
        60_000,
      );
      const res = await fetch(`${url}/alerts/generic`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ALERT_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ host: 'web-9', name: 'DiskFull', problem: 'disk' }),
      });
      assert.equal(res.status, 202);
      await until('a post in flight', () => slack.calls.some((c) => c.method === 'chat.postMessage'), 20_000);
      const started = Date.now();
      bot.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => bot.once('exit', (c) => resolve(c)));
      const took = Date.now() - started;
      assert.ok(took < 9000, `stopped after ${took} ms, not within the outbox's 5 s and a margin`);
      assert.equal(code, 0);
    } finally {
      stopHanging();
      if (bot.exitCode === null) bot.kill('SIGKILL');
    }
    const db = await openPglite(join(data, 'pglite'), 'nightshift');
    try {
      const { rows } = await db.executeSql<{ claimed_by: string | null; posted_at: Date | null }>(
        "SELECT claimed_by, posted_at FROM thread_messages WHERE role = 'root'",
      );
      assert.deepEqual(
        rows.map((r) => [r.claimed_by, r.posted_at]),
        [[null, null]],
        'the root is not posted and its claim was given back, for the next start to post',
      );
    } finally {
      await db.close();
    }
  });
});
