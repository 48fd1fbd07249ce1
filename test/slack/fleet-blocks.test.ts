import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type FleetIncident, fleetOverview } from '../../src/incidents/signature.ts';
import { fleetMessage } from '../../src/slack/blocks/fleet.ts';
import { blockKitProblems } from '../helpers/block-kit.ts';

const incident = (
  id: number,
  host: string,
  topEvidence: string | null,
  status: FleetIncident['status'] = 'open',
) =>
  ({
    id,
    host,
    status,
    openedAt: new Date(Date.UTC(2026, 11, 3, 1, id)),
    coreBytes: 2 ** 30,
    ...(topEvidence ? { signature: { executable: '/usr/bin/php-fpm', signal: 'SIGABRT', topEvidence } } : {}),
  }) satisfies FleetIncident;

describe('the fleet message', () => {
  it('counts hosts, open and mitigated incidents and bytes of cores, and groups them by crash', () => {
    const message = fleetMessage(
      fleetOverview([
        incident(1, 'web-1', 'GET /live', 'resolved'),
        incident(2, 'web-2', 'GET /live'),
        incident(3, 'web-5', 'GET /live', 'mitigated'),
        incident(4, 'db-1', 'GET /report'),
        incident(5, 'web-9', null),
      ]),
    );
    assert.deepEqual(blockKitProblems(message.blocks), []);
    const all = JSON.stringify(message.blocks);
    assert.match(
      message.text,
      /4 hosts with incidents {2}· {2}3 open {2}· {2}1 mitigated {2}· {2}4(\.0)? GiB of cores/,
    );
    assert.ok(all.includes('*Hosts:* db-1, web-2, web-5, web-9'), all);
    assert.ok(all.includes('*php-fpm · SIGABRT · GET /live*\\n2 hosts (web-2, web-5): #2, #3'), all);
    assert.ok(all.includes('1 host (db-1): #4'), all);
    assert.ok(all.includes('1 incident whose crash is not known yet'), all);
    assert.ok(!all.includes('web-1'), 'a resolved incident is not in the fleet');
  });

  it('stays within Block Kit limits and escapes what the cores and alerts said', () => {
    const many = Array.from({ length: 400 }, (_, i) =>
      incident(i + 1, `<!here>-${i % 60}`, `GET /${i % 30}?q=<@U123>&x=${'y'.repeat(400)}`),
    );
    const message = fleetMessage(fleetOverview(many));
    assert.deepEqual(blockKitProblems(message.blocks), []);
    const all = JSON.stringify(message.blocks);
    assert.ok(!all.includes('<!here>') && !all.includes('<@U123>'), 'no live markup');
    assert.ok(all.includes('and 20 more crashes'), all.slice(-400));
    assert.ok(all.includes('and 2 more'), 'incidents past the shown ones are counted');
  });

  it('says when nothing is open', () => {
    const message = fleetMessage(fleetOverview([incident(1, 'web-1', 'GET /live', 'resolved')]));
    assert.deepEqual(blockKitProblems(message.blocks), []);
    assert.match(message.text, /no incident open/);
  });
});
