import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ALERT_TOKEN, NIGHTSHIFT_BIN, rootsIn, serveEnv, suiteSlack } from '../helpers/bot.ts';
import { freePort, until } from '../helpers/wait.ts';

/**
 * `nightshift serve` on the embedded store, in a new data directory, through a burst of alerts: its
 * process's peak RSS (VmHWM) stays under 400 MiB (issue 13 §4; bench:bot measures the full 10,000).
 * Before, V8's optimizing compiler took 450-500 MiB for a second compiling PGlite's WebAssembly,
 * already while the bot ran its migrations (780 MiB and more at the peak).
 */

const HOSTS = 20;
const ALERTS = 1000;

const peakMiB = (pid: number) =>
  Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe("nightshift serve's memory on the embedded store", () => {
  const fakeSlack = suiteSlack();
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-serve-memory-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(`stays under 400 MiB from a new data directory through ${ALERTS} alerts`, {
    timeout: 300_000,
  }, async () => {
    const port = await freePort();
    const slack = fakeSlack();
    const bot = spawn(NIGHTSHIFT_BIN, ['serve'], {
      env: serveEnv(slack, join(dir, 'data'), port),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // What the bot says on stderr (a crash's stack), for the failure message.
    let stderr = '';
    bot.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    // A connection reset under load is retried, as Alertmanager does (the alert's id makes a
    // repeat harmless); a bot that died answers no retry either, and the test fails with its stderr.
    const post = async (url: string, init: RequestInit): Promise<Response> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fetch(url, init);
        } catch (error) {
          if (attempt >= 3 || bot.exitCode !== null) {
            throw new Error(`POST failed (bot exit ${bot.exitCode}): ${stderr}`, { cause: error });
          }
        }
      }
    };
    try {
      const url = `http://127.0.0.1:${port}`;
      await until(
        'the bot to answer',
        async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok,
        120_000,
      );
      let next = 0;
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          while (next < ALERTS) {
            const i = next++;
            const res = await post(`${url}/alerts/generic`, {
              method: 'POST',
              headers: { authorization: `Bearer ${ALERT_TOKEN}`, 'content-type': 'application/json' },
              body: JSON.stringify({
                host: `mem-${i % HOSTS}`,
                name: 'DiskFull',
                id: `a${i}`,
                disk: { mount: '/', usedPercent: 95 },
              }),
            });
            assert.equal(res.status, 202);
            await res.arrayBuffer();
          }
        }),
      );
      await until(
        'the outbox to drain',
        async () => {
          const metrics = await (await fetch(`${url}/metrics`)).text();
          return /^nightshift_outbox_messages\{state="pending"\} 0$/m.test(metrics);
        },
        240_000,
      );
      const top = rootsIn(slack);
      // Beside the roots, at most the one fleet message (several hosts have incidents at once; it
      // is not an outbox message, so the drain this waits for may end before it is posted).
      const roots = top.filter((m) => !/Fleet:/.test(m.text ?? ''));
      assert.equal(roots.length, HOSTS, 'one thread per host, all posted');
      assert.ok(top.length - roots.length <= 1, 'at most one fleet message');
      const peak = peakMiB(bot.pid!);
      assert.ok(peak < 400, `the bot peaked at ${peak.toFixed(0)} MiB`);
      bot.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => bot.once('exit', (c) => resolve(c)));
      assert.equal(code, 0);
    } finally {
      if (bot.exitCode === null) bot.kill('SIGKILL');
    }
  });
});
