import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createModelClient } from '../../src/agent/client.ts';
import { DEFAULT_POLICY } from '../../src/approvals/policy.ts';
import { systemClock } from '../../src/clock.ts';
import { QUEUES } from '../../src/jobs/queues.ts';
import { registerWorkers } from '../../src/jobs/workers/index.ts';
import { createLogger } from '../../src/log.ts';
import { migratedDb, testDatabases } from '../helpers/db.ts';
import { endTurn, startFakeAnthropic, toolUse, type WireToolResultBlock } from '../helpers/fake-anthropic.ts';
import { testBoss } from '../helpers/queue.ts';
import { atEnd } from '../helpers/test-end.ts';
import { until } from '../helpers/wait.ts';

/**
 * The agent on the job queue, as the bot runs it: an analysis finishes, an agent-turn job is
 * queued, and the agent reads the findings and the analysis's correlations, then posts its
 * conclusion to the thread.
 */
const examples = new URL('../../examples/', import.meta.url).pathname;

for (const database of testDatabases()) {
  describe(`the agent-turn job on pg-boss on ${database.name}`, () => {
    it('takes its turn after an analysis and posts what it concluded', async (t) => {
      const db = await migratedDb(t, database);
      const log = createLogger({ level: 'silent' });
      const fake = await startFakeAnthropic();
      atEnd(t, () => fake.close());
      const boss = await testBoss(t, db, log);
      const { rows } = await db.executeSql<{ id: string }>(
        `INSERT INTO incidents (group_key, host, problem, title, opened_by) VALUES ('web-1:disk', 'web-1', 'disk', 'Disk', 'test') RETURNING id`,
      );
      const incidentId = Number(rows[0]!.id);
      let listed = '';
      fake.reply(toolUse('list_findings', {}), (request) => {
        const results = request.messages.flatMap((m) => (typeof m.content === 'string' ? [] : m.content));
        const last = results.filter((b): b is WireToolResultBlock => b.type === 'tool_result').at(-1)!;
        listed = typeof last.content === 'string' ? last.content : '';
        return endTurn('Three workers were stuck reading the radio stream when they were killed.');
      });
      await registerWorkers(boss, {
        now: systemClock,
        db,
        log,
        policy: DEFAULT_POLICY,
        channel: '#incidents',
        evidenceDir: '/nonexistent',
        agent: {
          model: createModelClient({ apiKey: fake.apiKey, baseURL: fake.baseURL }),
          maxTurns: 20,
          maxTokens: 200_000,
        },
      });
      await boss.send(QUEUES.analyzeEvidence.name, { incidentId, paths: [examples] });
      const reply = await until(
        "the agent's message",
        async () => {
          const r = await db.executeSql<{ body: { text: string } | string }>(
            `SELECT body FROM thread_messages WHERE incident_id = $1 AND dedup_key LIKE 'agent:%:turn:%'`,
            [incidentId],
          );
          const body = r.rows[0]?.body;
          return body ? (typeof body === 'string' ? JSON.parse(body) : body).text : undefined;
        },
        60_000,
      );
      assert.match(reply, /Three workers were stuck reading the radio stream/);
      assert.match(reply, /Looked at: list_findings/);
      assert.match(listed, /Likely endless stream in 3 of 5 dumps/);
      assert.match(listed, /Correlations of the latest analysis \([1-9]\d*\)/);
      assert.match(listed, /\/live\/radio\.mp3 — in 3 of 5 dumps, looks like an endless stream/);
      assert.equal(fake.requests.length, 2);
      const off = await db.executeSql('SELECT 1 FROM thread_messages WHERE dedup_key = $1', [
        `agent:${incidentId}:off`,
      ]);
      assert.equal(off.rows.length, 0, 'the agent is on: no off notice');
    });
  });
}
