import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alertLinks, silenceUrl } from '../../src/alerts/links.ts';
import { incidentRoot, parseIncidentValue } from '../../src/slack/blocks/incident.ts';
import { blockKitProblems } from '../helpers/block-kit.ts';
import { diskIncident } from '../helpers/incident-fixture.ts';

const incident = diskIncident();
const now = new Date('2026-11-25T23:43:00Z');
const labels = { alertname: 'NodeFilesystemAlmostOutOfSpace', instance: 'web-1:9100', mountpoint: '/' };

type Action = { action_id: string; value: string; text: { text: string } };
const actionsOf = (blocks: unknown[]) =>
  (blocks as Array<{ type: string; elements?: Action[] }>).find((b) => b.type === 'actions')?.elements ?? [];

describe('the root message', () => {
  it('has Take command, Mitigated and Resolve while the incident is open, none once resolved', () => {
    const open = incidentRoot(incident, [], now);
    assert.deepEqual(blockKitProblems(open.blocks), []);
    assert.deepEqual(
      actionsOf(open.blocks).map((a) => [a.action_id, a.text.text, a.value]),
      [
        ['incident_take_command', 'Take command', '12'],
        ['incident_mitigated', 'Mitigated', '12'],
        ['incident_resolve', 'Resolve', '12'],
      ],
    );
    const mitigated = incidentRoot({ ...incident, status: 'mitigated' }, [], now);
    assert.deepEqual(
      actionsOf(mitigated.blocks).map((a) => a.action_id),
      ['incident_take_command', 'incident_resolve'],
    );
    const resolved = incidentRoot({ ...incident, status: 'resolved', resolvedAt: now }, [], now);
    assert.deepEqual(actionsOf(resolved.blocks), []);
    assert.equal(parseIncidentValue('12'), 12);
    assert.equal(parseIncidentValue('12; DROP'), undefined);
  });

  it("links the alert's source, Grafana and a silence of its labels, and shows the headline", () => {
    const links = alertLinks({
      labels,
      generatorURL: 'http://prometheus.internal:9090/graph?g0.expr=a%3Db&g0.tab=1',
      panelURL: 'https://grafana.internal/d/abc?viewPanel=2',
      externalURL: 'http://alertmanager.internal:9093/',
    });
    assert.equal(
      links.silence,
      `http://alertmanager.internal:9093/#/silences/new?filter=${encodeURIComponent(
        '{alertname="NodeFilesystemAlmostOutOfSpace", instance="web-1:9100", mountpoint="/"}',
      )}`,
    );
    const root = incidentRoot(incident, [], now, undefined, {
      links,
      headline: 'Likely endless stream in 6 of 8 dumps: http://radio.example/live <!channel>',
    });
    assert.deepEqual(blockKitProblems(root.blocks), []);
    const all = JSON.stringify(root.blocks);
    assert.ok(
      all.includes('<http://prometheus.internal:9090/graph?g0.expr=a%3Db&amp;g0.tab=1|Alert source>'),
      all,
    );
    assert.ok(all.includes('<https://grafana.internal/d/abc?viewPanel=2|Grafana>'));
    assert.ok(all.includes('|Silence in Alertmanager>'));
    assert.ok(
      all.includes(
        '*Found:* Likely endless stream in 6 of 8 dumps: http://radio.example/live &lt;!channel&gt;',
      ),
    );
  });

  it('shows what freeing the disk gave back, the disk before → after', () => {
    const root = incidentRoot(incident, [], now, undefined, {
      freed: { bytes: 3 * 1024 ** 3, lines: ['/: 97% → 41% used, 1.2 GiB → 30.1 GiB free', '/var <!here>'] },
    });
    assert.deepEqual(blockKitProblems(root.blocks), []);
    const all = JSON.stringify(root.blocks);
    assert.match(all, /\*Freed:\* 3(\.0)? GiB of cores; \/: 97% → 41% used, 1\.2 GiB → 30\.1 GiB free/);
    assert.ok(!all.includes('<!here>'), all);
  });

  it('keeps only http(s) links, and no label value can break out of the silence filter or the link', () => {
    assert.deepEqual(alertLinks({ generatorURL: 'javascript:alert(1)', dashboardURL: 'not a url' }), {});
    const tricky = silenceUrl('http://am:9093', { job: 'a"b\\c', x: '|>' })!;
    const filter = decodeURIComponent(tricky.split('filter=')[1]!);
    assert.equal(filter, '{job="a\\"b\\\\c", x="|>"}');
    const root = incidentRoot(incident, [], now, undefined, {
      links: { silence: tricky, source: 'http://p/graph?x=<!here>|y' },
    });
    const context = JSON.stringify(root.blocks.at(-1));
    assert.ok(!context.includes('<!here>'), context);
    // Each link is one <url|label>: no | or > from the URL ends it early.
    const linkTexts = [...context.matchAll(/<([^>]*)>/g)].map((m) => m[1]!);
    for (const link of linkTexts) assert.equal(link.split('|').length, 2, link);
  });

  it('names the same crash on other hosts and the incident it recurs of, escaped and within limits', () => {
    const others = Array.from({ length: 14 }, (_, i) => ({
      id: 20 + i,
      host: i === 0 ? '<!here>' : `web-${i}`,
    }));
    const root = incidentRoot(incident, [], now, undefined, {
      sameCrash: others,
      recurrenceOf: {
        id: 7,
        host: 'db-1',
        headline: 'Stream <!channel> held',
        freedBytes: 3 * 2 ** 30,
        ran: ['free'],
      },
    });
    assert.deepEqual(blockKitProblems(root.blocks), []);
    const all = JSON.stringify(root.blocks);
    assert.ok(all.includes('*Same crash on* &lt;!here&gt;, web-1,'), all);
    assert.ok(all.includes('#20, #21,') && all.includes('#29 and 4 more'), all);
    assert.match(
      all,
      /\*Seen before\* in #7 on db-1 \(resolved\): Stream &lt;!channel&gt; held\. \*Done then:\* freed 3(\.0)? GiB of cores; ran free/,
    );
    const plain = incidentRoot(incident, [], now, undefined, {
      recurrenceOf: { id: 7, host: 'db-1', ran: [] },
    });
    assert.ok(JSON.stringify(plain.blocks).includes('(resolved). *Done then:* nothing recorded'));
  });
});
