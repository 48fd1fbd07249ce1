import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AnalysisAnswerInput,
  analysisAnswer,
  analysisHeadline,
  analysisMarkdown,
  customerOf,
  streamUrl,
} from '../../src/slack/blocks/analysis.ts';
import { md } from '../../src/slack/blocks/mrkdwn.ts';
import { statusMessage } from '../../src/slack/blocks/status.ts';
import { blockKitProblems } from '../helpers/block-kit.ts';

const ATTACK = '<!channel> <https://evil.example|click> `x` &amp; <@U0BOSS>';
const STREAM = 'http://radio.example:8000/live/radio.mp3';

const input = (over: Partial<AnalysisAnswerInput> = {}): AnalysisAnswerInput => ({
  incidentId: 3,
  dumps: 8,
  unreadable: 0,
  findings: [
    { severity: 'critical', title: `Likely endless stream in 6 of 8 dumps: ${STREAM}`, detail: 'endless' },
    { severity: 'info', title: '8 of 8 dumps died of SIGABRT', detail: 'abort' },
  ],
  correlations: [
    { value: STREAM, kind: 'url', dumps: 6, total: 8, stream: true, why: 'an audio stream' },
    {
      value: 'GET /api/feeds/refresh?customer=4711',
      kind: 'request',
      dumps: 8,
      total: 8,
      stream: false,
      why: 'in every dump',
    },
    { value: 'icy-name: Test Radio', kind: 'header', dumps: 6, total: 8, stream: true, why: 'ICY' },
  ],
  nextSteps: [
    `Find who configured ${STREAM}.`,
    'Give the fetcher a read timeout.',
    'Look at the logs.',
    'Fourth.',
  ],
  ...over,
});

const sectionsText = (blocks: unknown[]) => JSON.stringify(blocks);

describe('the answer of an analysis', () => {
  it('puts the headline first: the stream URL plain, the request with its customer', () => {
    const message = analysisAnswer(input());
    assert.deepEqual(blockKitProblems(message.blocks), []);
    const head = (message.blocks[1] as unknown as { text: { text: string } }).text.text;
    assert.equal(
      head,
      `:rotating_light: *Likely endless stream in 6 of 8 dumps:*\n${STREAM}\n\n*Request they held* (8 of 8 dumps, customer 4711):\nGET /api/feeds/refresh?customer=4711`,
    );
    const all = sectionsText(message.blocks);
    assert.match(all, /:loud_sound: stream · url in 6 of 8 dumps/);
    assert.match(all, /request in 8 of 8 dumps/);
    assert.match(all, /Look at next/);
    // Three next steps at most; the rest is in the file.
    assert.ok(!all.includes('Fourth.'));
    assert.ok(analysisMarkdown(input()).includes('4. Fourth.'));
    assert.match(message.text, /Analysis of 8 dumps/);
  });

  it('decodes a stream named only inside a percent-encoded request line', () => {
    const request =
      'GET /fetch?customer_id=42&url=http%3A%2F%2Fradio.example%3A8000%2Flive%2Fradio.mp3 HTTP/1.1';
    assert.equal(streamUrl({ kind: 'request', value: request }), STREAM);
    assert.deepEqual(customerOf(request), { key: 'customer_id', id: '42' });
    const message = analysisAnswer(
      input({
        correlations: [{ value: request, kind: 'request', dumps: 5, total: 8, stream: true, why: 'x' }],
      }),
    );
    const head = (message.blocks[1] as unknown as { text: { text: string } }).text.text;
    assert.ok(
      head.startsWith(`:rotating_light: *Likely endless stream in 5 of 8 dumps:*\n${STREAM}\n`),
      head,
    );
    assert.match(head, /customer_id 42/);
    assert.equal(analysisHeadline(input()), `Likely endless stream in 6 of 8 dumps: ${STREAM}`);
  });

  it('escapes what the cores hold: no ping, link, mention or code span comes from them', () => {
    const message = analysisAnswer(
      input({
        findings: [{ severity: 'critical', title: ATTACK, detail: ATTACK }],
        correlations: [
          { value: `http://x.example/${ATTACK}`, kind: 'url', dumps: 2, total: 2, stream: true, why: ATTACK },
          { value: `GET /?customer=${ATTACK}`, kind: 'request', dumps: 2, total: 2, stream: false, why: '' },
        ],
        nextSteps: [ATTACK],
      }),
    );
    const all = sectionsText(message.blocks) + message.text;
    for (const bad of ['<!channel>', '<https://', '<@U0BOSS>', '`x`']) assert.ok(!all.includes(bad), bad);
  });

  it('stays within Block Kit limits however long the values, and falls back to the top finding', () => {
    const long = 'x'.repeat(20_000);
    const message = analysisAnswer(
      input({
        findings: [{ severity: 'warning', title: long, detail: long }],
        correlations: Array.from({ length: 60 }, (_, i) => ({
          value: `${i}${long}`,
          kind: 'string',
          dumps: 2,
          total: 2,
          stream: false,
          why: long,
        })),
        nextSteps: [long, long, long],
      }),
    );
    assert.deepEqual(blockKitProblems(message.blocks), []);
    assert.ok(message.text.length <= 3000);
    assert.match((message.blocks[1] as unknown as { text: { text: string } }).text.text, /^\*x+…\*$/);
  });
});

describe('the status message', () => {
  it('shows each phase once, in order, whatever order they were written in', () => {
    const message = statusMessage(4, [
      { phase: 'analysis', line: md`:hourglass: Analysing 2 dumps` },
      { phase: 'collection', line: md`:white_check_mark: Collection on ${'<!here>'} done` },
      { phase: 'pull', line: md`Pulled 2 of 2` },
    ]);
    assert.deepEqual(blockKitProblems(message.blocks), []);
    const text = (message.blocks[0] as unknown as { text: { text: string } }).text.text;
    assert.equal(
      text,
      '*Progress on #4*\n:white_check_mark: Collection on &lt;!here&gt; done\nPulled 2 of 2\n:hourglass: Analysing 2 dumps',
    );
    assert.equal(message.text, ':hourglass: Analysing 2 dumps');
  });
});
