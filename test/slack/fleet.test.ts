import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebClient } from '@slack/web-api';
import { systemClock } from '../../src/clock.ts';
import { openIncidentByHand, setStatus } from '../../src/incidents/incidents.ts';
import { createLogger } from '../../src/log.ts';
import { slackPoster } from '../../src/slack/app.ts';
import { markRelatedStale } from '../../src/slack/fleet.ts';
import { runIncidentCommand } from '../../src/slack/incident-actions.ts';
import { drainOutbox } from '../../src/slack/outbox.ts';
import type { SlackPoster } from '../../src/slack/poster.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { blockKitProblems } from '../helpers/block-kit.ts';
import { testDatabases } from '../helpers/db.ts';
import { FAKE_IDS, type FakeSlack, startFakeSlack } from '../helpers/fake-slack.ts';
import { listenerDeps } from '../helpers/listener-args.ts';

/**
 * The fleet through the bot and the outbox to the fake Slack: incidents on different hosts whose
 * analyses found the same crash name each other on their roots; a new one links the resolved one
 * it recurs of, with what that one found and did. The analyses' results are stored as the
 * analysis job stores them (jobs.result), without pulling cores.
 */
const CHANNEL = FAKE_IDS.channel;
const log = createLogger({ level: 'silent' });
const USER = 'U0ONCALL';

const CRASH = {
  executable: '/usr/local/bin/php-fpm',
  signal: 'SIGABRT',
  topEvidence: 'GET /proxy?customer_id=4711&url=http%3A%2F%2Fradio.example%2Flive <!channel>',
  count: 3,
};

for (const database of testDatabases()) {
  describe(`the fleet's incidents on ${database.name}`, () => {
    let slack: FakeSlack;
    let poster: SlackPoster;
    let db: Db;

    before(async () => {
      slack = await startFakeSlack();
      poster = slackPoster(new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl }));
      db = await database.open();
      await migrate(db);
    });
    after(async () => {
      await db.close();
      await slack.close();
    });

    const open = async (host: string) =>
      (await openIncidentByHand(db, { host, note: 'disk full', user: USER, channel: CHANNEL })).incident.id;
    /** The analysis of an incident, stored as the analysis job stores it, and the roots it changes marked. */
    const analysed = async (incidentId: number, signature: typeof CRASH) => {
      const { rows } = await db.executeSql<{ id: string }>(
        `INSERT INTO jobs (incident_id, kind, state, input, result, started_at, finished_at)
         VALUES ($1, 'analyze-evidence', 'succeeded', '{}', $2, now(), now()) RETURNING id`,
        [
          incidentId,
          JSON.stringify({
            bytes: 3 * 2 ** 30,
            correlations: [
              { value: signature.topEvidence, kind: 'request', dumps: 3, total: 3, stream: true, why: '' },
            ],
            signatures: [signature],
          }),
        ],
      );
      assert.ok(rows[0]);
      await db.executeSql('UPDATE incidents SET root_hash = NULL WHERE id = $1', [incidentId]);
      await markRelatedStale(db, incidentId);
    };
    const root = async (incidentId: number) => {
      const { rows } = await db.executeSql<{ root_ts: string }>(
        'SELECT root_ts FROM incidents WHERE id = $1',
        [incidentId],
      );
      const message = slack.message(CHANNEL, rows[0]!.root_ts)!;
      assert.deepEqual(blockKitProblems(message.blocks ?? []), []);
      return JSON.stringify(message.blocks);
    };

    it('names the same crash on the other hosts, on each root, and a recurrence with what was done', async () => {
      const before = await open('db-1');
      await analysed(before, CRASH);
      await setStatus(db, before, 'resolved', USER);
      const web2 = await open('web-2');
      const web5 = await open('web-5');
      const other = await open('web-7');
      await drainOutbox(db, poster, log, systemClock);
      const replies = () => slack.calls.filter((c) => c.method === 'chat.postMessage').length;
      const posted = replies();
      await analysed(web2, CRASH);
      await analysed(other, { ...CRASH, topEvidence: 'GET /health' });
      await drainOutbox(db, poster, log, systemClock);
      assert.ok(!(await root(web2)).includes('Same crash'), 'no match before the second analysis');
      await analysed(web5, CRASH);
      await drainOutbox(db, poster, log, systemClock);
      const two = await root(web2);
      const five = await root(web5);
      assert.ok(two.includes(`*Same crash on* web-5: #${web5}`), two);
      assert.ok(five.includes(`*Same crash on* web-2: #${web2}`), five);
      assert.ok(!(await root(other)).includes('Same crash'), 'another crash is not the same');
      for (const text of [two, five]) {
        assert.ok(
          text.includes(`*Seen before* in #${before} on db-1 (resolved): Likely endless stream`),
          text,
        );
        assert.ok(text.includes('*Done then:* nothing recorded'), text);
        assert.ok(!text.includes('<!channel>'), text);
      }
      // One channel message for the fleet, posted once two hosts had incidents, edited since.
      const fleet = slack.messages.get(CHANNEL)!.filter((m) => !m.thread_ts && m.text?.includes('Fleet'));
      assert.equal(fleet.length, 1, 'one fleet message');
      assert.equal(replies(), posted, 'the match is shown on the roots, with no reply');
      const fleetText = JSON.stringify(fleet[0]!.blocks);
      assert.deepEqual(blockKitProblems(fleet[0]!.blocks ?? []), []);
      assert.ok(
        fleetText.includes('3 hosts with incidents  ·  3 open  ·  0 mitigated  ·  9.0 GiB of cores'),
        fleetText,
      );
      assert.ok(fleetText.includes(`2 hosts (web-2, web-5): #${web2}, #${web5}`), fleetText);
      assert.ok(fleetText.includes('php-fpm · SIGABRT · GET /proxy?customer_id=4711'), fleetText);
      assert.ok(!fleetText.includes('<!channel>'), fleetText);
      const edits = () =>
        slack.calls.filter((c) => c.method === 'chat.update' && c.args.ts === fleet[0]!.ts).length;
      const editsBefore = edits();
      await drainOutbox(db, poster, log, systemClock);
      assert.equal(edits(), editsBefore, 'an unchanged fleet is not edited');
      // The postmortem, asked for with /investigate summary: a file in the thread.
      // The wall clock, as the bot's; no hosts file, so /investigate starts no collection.
      const { deps } = listenerDeps(db, { log, now: () => new Date(), startCollection: undefined });
      const context = { user: USER, channel: CHANNEL, requestId: 'r1' };
      await runIncidentCommand(deps, { kind: 'summary', incident: web2 }, context);
      await drainOutbox(db, poster, log, systemClock);
      const file = slack.files.find((f) => f.filename === `incident-${web2}-summary.md`);
      assert.ok(file?.bytes && file.shares.length === 1, 'the summary is shared once, as a file');
      const summary = file.bytes.toString('utf8');
      assert.match(
        summary,
        /## Root cause\n\nLikely endless stream in 3 of 3 dumps: http:\/\/radio\.example\/live/,
      );
      assert.ok(summary.includes('Crash: php-fpm · SIGABRT · GET /proxy?customer_id=4711'), summary);
      assert.ok(summary.includes('Customer: customer_id 4711, in the request the workers held:'), summary);
      assert.ok(summary.includes('Nothing freed by the bot.'), summary);
      assert.ok(summary.includes(`- #${web5} on web-5: the same crash, at the same time`), summary);
      assert.ok(
        summary.includes(`- #${before} on db-1 (resolved): the same crash before; found: Likely endless`),
        summary,
      );
      // Resolved (the command a button runs too), web-5 no longer shows on web-2's root.
      await runIncidentCommand(deps, { kind: 'set', status: 'resolved', incident: web5 }, context);
      await drainOutbox(db, poster, log, systemClock);
      assert.ok(!(await root(web2)).includes('Same crash'), await root(web2));
      const edited = JSON.stringify(slack.message(CHANNEL, fleet[0]!.ts)!.blocks);
      assert.ok(edited.includes('2 hosts with incidents  ·  2 open'), edited);
      assert.equal(
        slack.messages.get(CHANNEL)!.filter((m) => !m.thread_ts && m.text?.includes('Fleet')).length,
        1,
        'still one fleet message',
      );
    });
  });
}
