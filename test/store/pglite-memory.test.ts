import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openPglite } from '../../src/store/adapters/pglite.ts';
import { migrate } from '../../src/store/migrate.ts';

const root = new URL('../../', import.meta.url).pathname;
const node = join(root, 'node_modules/.bin/node');
const dir = mkdtempSync(join(tmpdir(), 'nightshift-pglite-memory-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The outbox's claim as outbox.ts writes it: the next message of a thread that can be posted. */
const CLAIM = `SELECT m.id FROM thread_messages m JOIN incidents i ON i.id = m.incident_id
  WHERE m.posted_at IS NULL AND m.dead_at IS NULL
    AND (m.not_before IS NULL OR m.not_before <= now())
    AND (m.claimed_at IS NULL OR m.claimed_at < now() - 120000::float8 * interval '1 millisecond')
    AND (m.role = 'root' OR (i.root_ts IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM thread_messages e
      WHERE e.incident_id = m.incident_id AND e.role = 'reply' AND e.id < m.id
        AND e.posted_at IS NULL AND e.dead_at IS NULL)))
  ORDER BY m.id LIMIT 1 FOR UPDATE OF m SKIP LOCKED`;

describe("the embedded store's memory under a burst", () => {
  it('makes a new data directory in a child process and starts with small buffers', () => {
    // Liftoff only, so V8's optimizing compiler (hundreds of MiB for a moment, at its own time)
    // does not blur what is measured: initdb in this process peaked over 900 MiB.
    const run = spawnSync(
      node,
      ['--liftoff-only', join(root, 'test/store/fixtures/open-peak.ts'), join(dir, 'new')],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    const { peakMiB, wasmMiB } = JSON.parse(run.stdout) as { peakMiB: number; wasmMiB: number };
    assert.ok(peakMiB < 400, `opening a new data directory peaked at ${peakMiB.toFixed(0)} MiB`);
    // 128 MiB is the least PGlite's module declares; 128 MB of shared_buffers made it 189.
    assert.ok(wasmMiB <= 128, `PGlite's WebAssembly memory is ${wasmMiB} MiB after start`);
  });

  it('analyzes the tables it writes, so the outbox claim reads one queued message, not all', async () => {
    const db = await openPglite(undefined, 'nightshift');
    try {
      await migrate(db);
      await db.executeSql(`INSERT INTO incidents (group_key, host, problem, title, severity, opened_by, root_ts)
        SELECT 'g' || i, 'h' || i, 'disk', 't', 'warning', 'alert:generic', '1.' || i
        FROM generate_series(1, 200) i`);
      // 10,000 replies queued, 50 per thread, in the order a burst queues them.
      for (let batch = 0; batch < 10; batch++)
        await db.executeSql(
          `INSERT INTO thread_messages (incident_id, dedup_key, role, channel, body)
           SELECT (SELECT min(id) FROM incidents) + i % 200, 'alert:' || i, 'reply', 'C1', '{"type":"alert"}'
           FROM generate_series($1::int, $1::int + 999) i`,
          [batch * 1000],
        );
      const { rows } = await db.executeSql<{ 'QUERY PLAN': string }>(
        `EXPLAIN (ANALYZE, FORMAT JSON) ${CLAIM}`,
      );
      const plan = JSON.stringify(rows[0]!['QUERY PLAN']);
      const read = (JSON.parse(plan) as [{ Plan: PlanNode }])[0].Plan;
      const visited = maxRows(read, 'thread_messages');
      assert.ok(!plan.includes('"Node Type":"Sort"'), `the claim sorts the queue (${visited} messages read)`);
      assert.ok(visited < 100, `the claim read ${visited} queued messages for one`);
    } finally {
      await db.close();
    }
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

/** The most rows one scan of `table` produced or filtered out, anywhere in the plan. */
function maxRows(node: PlanNode, table: string): number {
  const own =
    node['Relation Name'] === table ? (node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) : 0;
  return Math.max(own, ...(node.Plans ?? []).map((child) => maxRows(child, table)));
}
