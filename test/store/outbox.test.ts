import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recordDelivery } from '../../src/alerts/intake.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import {
  claimNextMessage,
  outboxBacklog,
  postedMessageAt,
  recordReplyPosted,
  recordRootPosted,
  releaseForRetry,
  renewClaim,
} from '../../src/store/outbox.ts';
import { testDatabases } from '../helpers/db.ts';

/**
 * The outbox's claims as stored, without Slack: a thread's root comes before its replies, a claim
 * is its holder's alone, a message waiting out its retry is not offered, and a posted message is
 * found again by its ts and key.
 */

const CHANNEL = 'C0STORE';
const TIMEOUT_MS = 60_000;

async function withDb(open: () => Promise<Db>, test: (db: Db) => Promise<void>) {
  const db = await open();
  try {
    await migrate(db);
    await test(db);
  } finally {
    await db.close();
  }
}

const diskAlert = (host: string) =>
  JSON.stringify({ host, name: 'DiskFull', disk: { mount: '/', usedPercent: 97 } });

for (const database of testDatabases()) {
  describe(`the outbox store on ${database.name}`, () => {
    it('offers a root first, and its reply only once the root is posted', () =>
      withDb(database.open, async (db) => {
        await recordDelivery(db, 'generic', diskAlert('web-1'), { channel: CHANNEL });
        const root = await claimNextMessage(db, TIMEOUT_MS);
        assert.equal(root?.role, 'root');
        assert.equal(root.body.type, 'incident.root');
        assert.equal(root.attempts, 0);
        assert.equal(await claimNextMessage(db, TIMEOUT_MS), undefined, 'the reply waits for its root');
        assert.equal(await renewClaim(db, root.id, root.claimedBy), true);
        assert.equal(await renewClaim(db, root.id, 'someone else'), false, 'a claim is its holder’s');
        await recordRootPosted(db, {
          messageId: root.id,
          incidentId: root.incidentId,
          channel: CHANNEL,
          ts: '1700000000.000100',
          hash: 'h',
        });
        assert.equal(await renewClaim(db, root.id, root.claimedBy), false, 'a posted message is not held');
        const reply = await claimNextMessage(db, TIMEOUT_MS);
        assert.equal(reply?.role, 'reply');
        assert.equal(reply.incidentId, root.incidentId);
        assert.deepEqual(reply.body.type === 'alert' ? [reply.body.status, reply.body.name] : reply.body, [
          'firing',
          'DiskFull',
        ]);
      }));

    it('does not offer a message waiting out its retry; the backlog counts it with its error', () =>
      withDb(database.open, async (db) => {
        await recordDelivery(db, 'generic', diskAlert('web-2'), { channel: CHANNEL });
        const root = (await claimNextMessage(db, TIMEOUT_MS))!;
        await releaseForRetry(db, root.id, 'Slack said no', 60_000);
        assert.equal(await claimNextMessage(db, TIMEOUT_MS), undefined);
        const backlog = await outboxBacklog(db);
        assert.equal(backlog.pending, 2, 'the root and its reply');
        assert.equal(backlog.dead, 0);
        assert.equal(backlog.lastError, 'Slack said no');
        await releaseForRetry(db, root.id, 'Slack said no', 0);
        const again = await claimNextMessage(db, TIMEOUT_MS);
        assert.equal(again?.id, root.id);
        assert.equal(again.attempts, 1, 'the attempt before counts');
      }));

    it('finds a posted message by its ts and the prefix of its key, in its channel', () =>
      withDb(database.open, async (db) => {
        await recordDelivery(db, 'generic', diskAlert('web-3'), { channel: CHANNEL });
        const root = (await claimNextMessage(db, TIMEOUT_MS))!;
        const rootTs = '1700000000.000200';
        await recordRootPosted(db, {
          messageId: root.id,
          incidentId: root.incidentId,
          channel: CHANNEL,
          ts: rootTs,
          hash: null,
        });
        const reply = (await claimNextMessage(db, TIMEOUT_MS))!;
        await recordReplyPosted(db, reply.id, { ts: '1700000000.000300', channel: CHANNEL });
        const where = { channel: CHANNEL, ts: '1700000000.000300' };
        assert.deepEqual(await postedMessageAt(db, { ...where, keyPrefix: 'alert:' }), {
          dedupKey: reply.dedupKey,
          rootTs,
        });
        assert.equal(await postedMessageAt(db, { ...where, keyPrefix: 'proposal:' }), undefined);
        assert.equal(
          await postedMessageAt(db, { ...where, keyPrefix: 'a%' }),
          undefined,
          'a prefix, not a pattern',
        );
        assert.equal(
          await postedMessageAt(db, { ...where, channel: 'C0OTHER', keyPrefix: 'alert:' }),
          undefined,
        );
      }));
  });
}
