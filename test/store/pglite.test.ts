import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { lockDataDir, openPglite, takeOverStale } from '../../src/store/adapters/pglite.ts';
import { migrate } from '../../src/store/migrate.ts';
import { freePort, until } from '../helpers/wait.ts';

const root = new URL('../../', import.meta.url).pathname;
const node = join(root, 'node_modules/.bin/node');
const dir = mkdtempSync(join(tmpdir(), 'nightshift-pglite-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the embedded store (PGlite) in a data directory', () => {
  it('refuses a second bot on the same directory, naming the one that holds it', async () => {
    const dataDir = join(dir, 'shared');
    const held = join(dataDir, 'pglite'); // where `nightshift` keeps the embedded store
    const db = await openPglite(held, 'nightshift');
    try {
      await migrate(db);
      const second = spawnSync(join(root, 'bin/nightshift'), ['migrate'], {
        env: { ...process.env, NIGHTSHIFT_DATA_DIR: dataDir, DATABASE_URL: '' },
        encoding: 'utf8',
      });
      assert.equal(second.status, 1, second.stdout);
      assert.match(
        second.stderr,
        new RegExp(`another Nightshift \\(pid ${process.pid}\\) is using the embedded database in ${held}`),
      );
    } finally {
      await db.close();
    }
    // Closed: the lock is released and the directory opens again, its data intact.
    const again = await openPglite(held, 'nightshift');
    assert.deepEqual(await migrate(again), []);
    await again.close();
  });

  it('takes over a lock whose holder is gone', () => {
    const data = join(dir, 'stale');
    const release = lockDataDir(data);
    release();
    writeFileSync(join(data, 'nightshift.lock'), '999999999\n');
    const again = lockDataDir(data);
    assert.equal(readFileSync(join(data, 'nightshift.lock'), 'utf8').trim(), String(process.pid));
    again();
  });

  it("takes over only the dead holder's lock, never the one another starter has just taken", () => {
    // The interleaving: two starters read the stale lock of a dead pid; the first takes it over
    // and writes its own; the second, acting on what it read, must not remove that new lock.
    const data = join(dir, 'race');
    lockDataDir(data)();
    const path = join(data, 'nightshift.lock');
    writeFileSync(path, `${process.pid}\n`); // the first starter's fresh lock (a live pid)
    takeOverStale(path, 999_999_999); // the second starter, still believing it is stale
    assert.equal(readFileSync(path, 'utf8').trim(), String(process.pid));
    // A lock that really is the dead holder's is taken away.
    writeFileSync(path, '999999999\n');
    takeOverStale(path, 999_999_999);
    assert.equal(existsSync(path), false);
  });

  it('loses no acknowledged alert when nightshift serve is killed with SIGKILL, and starts again on the same directory', async () => {
    const data = join(dir, 'serve-crash');
    const token = 'alert-token-0123456789abcdef';
    const serve = (port: number) =>
      spawn(join(root, 'bin/nightshift'), ['serve'], {
        env: {
          ...process.env,
          DATABASE_URL: '',
          SLACK_BOT_TOKEN: '',
          NIGHTSHIFT_HOSTS: '',
          NIGHTSHIFT_DATA_DIR: data,
          ALERT_WEBHOOK_TOKEN: token,
          PORT: String(port),
          LOG_LEVEL: 'silent',
        },
        stdio: 'ignore',
      });
    const port = await freePort();
    const bot = serve(port);
    const url = `http://127.0.0.1:${port}`;
    await until(
      'the bot to answer',
      async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok,
      60_000,
    );
    const acked: string[] = [];
    // Alerts for many hosts, several in flight at once; kill it while they are.
    const send = async (i: number) => {
      const id = `crash-${i}`;
      const res = await fetch(`${url}/alerts/generic`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ host: `web-${i % 20}`, id, name: 'DiskFull', problem: 'disk' }),
      }).catch(() => undefined);
      if (res?.status === 202) acked.push(id);
    };
    let i = 0;
    const senders = Array.from({ length: 4 }, async () => {
      while (bot.exitCode === null && bot.signalCode === null) await send(i++);
    });
    await until('60 acknowledged alerts', () => acked.length >= 60, 60_000);
    bot.kill('SIGKILL');
    await Promise.all(senders);
    // It starts again on the same directory (the dead bot's lock is taken over)...
    const again = serve(port);
    try {
      await until(
        'the restarted bot to answer',
        async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok,
        60_000,
      );
    } finally {
      again.kill('SIGTERM');
      await new Promise((r) => again.once('exit', r));
    }
    // ...and every alert it had acknowledged is there.
    const db = await openPglite(join(data, 'pglite'), 'nightshift');
    try {
      const { rows } = await db.executeSql<{ id: string }>(
        `SELECT payload->>'id' AS id FROM alerts WHERE valid`,
      );
      const stored = new Set(rows.map((r) => r.id));
      const lost = acked.filter((id) => !stored.has(id));
      assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged alerts lost`);
    } finally {
      await db.close();
    }
  });

  it('loses nothing acknowledged when the bot is killed with SIGKILL mid-write', async () => {
    const data = join(dir, 'crash');
    const child = spawn(node, [join(root, 'test/store/fixtures/writer.ts'), data], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let acked = 0;
    let buffered = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`writer acknowledged only ${acked} rows in 60 s`)),
        60_000,
      );
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const line of lines) {
          const m = /^ack (\d+)$/.exec(line);
          if (m) acked = Number(m[1]);
        }
        if (acked >= 200 && child.exitCode === null) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', (code) => {
        if (acked < 200) {
          clearTimeout(timer);
          reject(new Error(`writer exited with ${code} after ${acked} rows`));
        }
      });
    });
    await new Promise((resolve) => child.once('exit', resolve));
    const db = await openPglite(data, 'nightshift');
    try {
      const { rows } = await db.executeSql<{ i: number }>(
        `SELECT (subject->>'i')::int AS i FROM audit_log WHERE action = 'tick' ORDER BY 1`,
      );
      const found = new Set(rows.map((r) => r.i));
      for (let i = 1; i <= acked; i++) assert.ok(found.has(i), `acknowledged row ${i} is lost`);
    } finally {
      await db.close();
    }
  });
});
