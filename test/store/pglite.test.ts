import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { lockDataDir, openPglite } from '../../src/store/adapters/pglite.ts';
import { migrate } from '../../src/store/migrate.ts';

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
