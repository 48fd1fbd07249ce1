import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  alertReply,
  formatDuration,
  incidentRoot,
  summaryMarkdown,
} from '../../src/slack/blocks/incident.ts';
import { diskIncident } from '../helpers/incident-fixture.ts';

const incident = diskIncident({ commander: 'U123', previousIncidentId: 9 });

describe('incident messages', () => {
  it('put status, host, disk, commander and age on short lines for a phone', () => {
    const message = incidentRoot(
      incident,
      [
        { mount: '/', usedPercent: 96.88 },
        { mount: '/var/lib/docker', usedPercent: null },
      ],
      new Date('2026-11-25T23:43:00Z'),
    );
    assert.equal(message.text, ':mag: #12 Disk / filling on web-1 (investigating)');
    const body = (message.blocks[1] as unknown as { text: { text: string } }).text.text;
    assert.deepEqual(body.split('\n'), [
      '*Status:* investigating  ·  *Severity:* critical',
      '*Host:* web-1',
      '*Disk:* / 96.88% used, /var/lib/docker',
      '*Commander:* <@U123>',
      '*Open for* 42 min (since 23:01 UTC)',
      '*Fired again:* follows #9',
    ]);
    for (const line of body.split('\n')) assert.ok(line.length <= 60, `too wide for a phone: ${line}`);
  });

  it('mark a resolved mount and count the alerts by state on the root', () => {
    const lines = (alerts: { firing: number; resolved: number }, status: 'firing' | 'resolved') =>
      (
        incidentRoot(
          incident,
          [
            { mount: '/', usedPercent: 96.88, status },
            { mount: '/var/lib/docker', usedPercent: 98.98, status: 'resolved' },
          ],
          new Date('2026-11-25T23:43:00Z'),
          alerts,
        ).blocks[1] as unknown as { text: { text: string } }
      ).text.text.split('\n');
    const some = lines({ firing: 1, resolved: 1 }, 'firing');
    assert.deepEqual(some.slice(2, 4), [
      '*Disk:* / 96.88% used, /var/lib/docker resolved',
      '*Alerts:* 1 firing, 1 resolved',
    ]);
    for (const line of some) assert.ok(line.length <= 60, `too wide for a phone: ${line}`);
    assert.deepEqual(lines({ firing: 0, resolved: 2 }, 'resolved').slice(2, 4), [
      '*Disk:* / resolved, /var/lib/docker resolved',
      '*Alerts:* 2 resolved',
    ]);
    assert.equal(
      lines({ firing: 0, resolved: 0 }, 'firing')[3],
      '*Commander:* <@U123>',
      'no alerts, no line',
    );
  });

  it('say firing or resolved in alert replies', () => {
    assert.match(
      alertReply({ status: 'firing', name: 'DiskFull', summary: '97% used' }).text,
      /^:fire: Firing: DiskFull\n97% used$/,
    );
    assert.match(
      alertReply({ status: 'resolved', name: 'DiskFull', summary: '' }).text,
      /^:large_green_circle: Resolved/,
    );
  });

  it('write a postmortem-ready timeline', () => {
    const md = summaryMarkdown(
      { ...incident, status: 'resolved', resolvedAt: new Date('2026-11-26T00:31:00Z') },
      [{ at: new Date('2026-11-25T23:01:05Z'), what: 'alert firing: disk on web-1' }],
      new Date(),
    );
    assert.match(md, /^# Incident #12: Disk \/ filling on web-1\n/);
    assert.match(md, /- Resolved: 2026-11-26T00:31:00.000Z \(1 h 30 min\)/);
    assert.match(md, /## Timeline \(UTC\)\n\n- 2026-11-25 23:01:05 {2}alert firing: disk on web-1/);
    assert.match(md, /## Root cause\n\n_Not found by the analysis; to fill in._/);
    assert.match(md, /## Related incidents\n\nNone with the same crash./);
  });

  it('write the root cause, the customer, what was freed and the related incidents into the postmortem', () => {
    const md = summaryMarkdown(incident, [], new Date('2026-11-26T00:00:00Z'), {
      rootCause: 'Likely endless stream in 3 of 3 dumps: http://radio.example/live',
      crash: 'php-fpm · SIGABRT · GET /proxy?customer_id=4711',
      customer: { key: 'customer_id', id: '4711', request: 'GET /proxy?customer_id=4711 ```' },
      freed: { bytes: 3 * 2 ** 30, lines: ['/: 97% → 41% used'] },
      sameCrash: [{ id: 15, host: 'web-5' }],
      recurrenceOf: {
        id: 7,
        host: 'db-1',
        headline: 'Same stream',
        freedBytes: 2 ** 30,
        ran: ['free', 'guard'],
      },
    });
    assert.match(
      md,
      /## Root cause\n\nLikely endless stream in 3 of 3 dumps: http:\/\/radio.example\/live\n\nCrash: php-fpm/,
    );
    assert.match(
      md,
      /Customer: customer_id 4711, in the request the workers held:\n\n```\nGET \/proxy\?customer_id=4711 ˋˋˋ\n```/,
    );
    assert.match(md, /## What was done\n\nFreed 3(\.0)? GiB of cores; \/: 97% → 41% used\./);
    assert.match(
      md,
      /- #15 on web-5: the same crash, at the same time\n- #7 on db-1 \(resolved\): the same crash before; found: Same stream; freed 1(\.0)? GiB; ran free, guard/,
    );
  });

  it('format durations', () => {
    assert.equal(formatDuration(59_000), '1 min');
    assert.equal(formatDuration(3 * 3600_000 + 5 * 60_000), '3 h 5 min');
    assert.equal(formatDuration(50 * 3600_000), '2 d 2 h');
  });
});
