import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startBoss } from '../../src/jobs/boss.ts';
import { QUEUES } from '../../src/jobs/queues.ts';
import { createLogger } from '../../src/log.ts';
import { testDatabases } from '../helpers/db.ts';

/**
 * The job queue wakes a queue's workers when a job is sent (LISTEN/NOTIFY) rather than at their
 * next poll: every queue has `notify`, including one an older bot created without it.
 */
for (const database of testDatabases()) {
  describe(`the job queue on ${database.name}`, () => {
    it('creates every queue with notify, and turns it on for a queue created without it', async () => {
      const db = await database.open();
      const log = createLogger({ level: 'silent' });
      try {
        const first = await startBoss(db, log);
        for (const queue of Object.values(QUEUES)) {
          assert.equal((await first.getQueue(queue.name))?.notify, true, queue.name);
          await first.updateQueue(queue.name, { notify: false });
        }
        await first.stop({ graceful: false });
        const second = await startBoss(db, log);
        try {
          for (const queue of Object.values(QUEUES))
            assert.equal((await second.getQueue(queue.name))?.notify, true, queue.name);
        } finally {
          await second.stop({ graceful: false });
        }
      } finally {
        await db.close();
      }
    });
  });
}
