import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { md } from '../../src/slack/blocks/mrkdwn.ts';
import { showProgress, statusMessageKey } from '../../src/slack/status-message.ts';
import type { Db } from '../../src/store/db.ts';
import { openIncident, testDatabases } from '../helpers/db.ts';

/**
 * The incident's status message: a line per phase, in one thread message, whose latest rendering
 * holds every phase's latest line whatever order the writers finish in.
 */
const bodyOf = async (db: Db, incidentId: number) => {
  const { rows } = await db.executeSql<{ body: unknown }>(
    'SELECT body FROM thread_messages WHERE dedup_key = $1',
    [statusMessageKey(incidentId)],
  );
  assert.equal(rows.length, 1, 'one status message');
  const raw = rows[0]!.body;
  const body = (typeof raw === 'string' ? JSON.parse(raw) : raw) as {
    text: string;
    blocks: Array<{ text: { text: string } }>;
  };
  return body.blocks[0]!.text.text;
};

for (const database of testDatabases()) {
  describe(`the status message on ${database.name}`, () => {
    it("keeps each phase's highest-ranked line, and every phase's line after writers race", async (t) => {
      const { db, incident } = await openIncident(t, database, { note: '' });
      const show = (phase: 'collection' | 'pull' | 'analysis', text: string, rank: number) =>
        showProgress(db, incident.id, phase, md`${text}`, { rank, channel: 'C1' });
      await show('collection', 'Collecting on <web-1>', 1);
      await show('collection', 'Collection done: 5 findings', 2);
      // A progress draw that finishes after the final count does not bring the count back.
      await show('pull', 'Pulled 2 of 2', 9);
      await show('pull', 'Pulling 1/2', 4);
      assert.equal(
        await bodyOf(db, incident.id),
        `*Progress on #${incident.id}*\nCollection done: 5 findings\nPulled 2 of 2`,
      );
      // Many writers at once, of every phase: the last rendering holds each phase's best line.
      await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => show('pull', `Pulling draw ${i}`, 10 + i)),
        show('analysis', 'Analysis done: 2 dumps', 2),
        show('collection', 'Collection done: 5 findings', 2),
      ]);
      assert.equal(
        await bodyOf(db, incident.id),
        `*Progress on #${incident.id}*\nCollection done: 5 findings\nPulling draw 9\nAnalysis done: 2 dumps`,
      );
    });
  });
}
