import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  escapeMrkdwn,
  joinMrkdwn,
  md,
  mentionUser,
  modelMrkdwn,
  mrkdwnSection,
  truncateMrkdwn,
  unescapeMrkdwn,
} from '../../src/slack/blocks/mrkdwn.ts';

/** The one escaping of outside text for Slack's mrkdwn, which every renderer uses. */
const PLANTED = [
  '<!channel>',
  '<!here>',
  '<!everyone>',
  '<@U123ABC>',
  '<#C0123|general>',
  '<!subteam^S123|@oncall>',
  '<https://evil.example/approve|re-approve here>',
  '<mailto:a@evil.example|support>',
  '&lt;!channel&gt;',
  '&#60;!here&#62;',
  '```end```',
  '`x`',
];

describe('escapeMrkdwn', () => {
  it('escapes &, < and > as Slack asks, so no markup survives', () => {
    assert.equal(escapeMrkdwn('a & b < c > d'), 'a &amp; b &lt; c &gt; d');
    for (const planted of PLANTED) {
      const escaped = escapeMrkdwn(planted);
      assert.ok(!/[<>`]/.test(escaped), `${planted} -> ${escaped}`);
      assert.ok(!/&(?!amp;|lt;|gt;)/.test(escaped), `a bare & left in ${escaped}`);
    }
  });

  it('keeps an escape from outside as the text it was, instead of the character it stands for', () => {
    assert.equal(escapeMrkdwn('&lt;!channel&gt;'), '&amp;lt;!channel&amp;gt;');
    assert.equal(unescapeMrkdwn(escapeMrkdwn('x < y && "&lt;"')), 'x < y && "&lt;"');
  });

  it('turns backticks into look-alikes, so outside text cannot open or close a code span', () => {
    assert.equal(escapeMrkdwn('```rm -rf```'), 'ˋˋˋrm -rfˋˋˋ');
  });
});

describe('md', () => {
  it('escapes what is put in it and keeps its own markup', () => {
    const host = '<!here>';
    assert.equal(md`*Host:* ${host}`.text, '*Host:* &lt;!here&gt;');
    assert.equal(md`${42} and ${null}`.text, '42 and null');
  });

  it('escapes once: mrkdwn built by md goes into md as it is', () => {
    const inner = md`<${'&'}>`;
    assert.equal(md`(${inner})`.text, '(<&amp;>)');
    assert.equal(joinMrkdwn([inner, '<b>'], ', ').text, '<&amp;>, &lt;b&gt;');
  });

  it('mentions a Slack user id, and shows any other name as text', () => {
    assert.equal(mentionUser('U0APPROVER').text, '<@U0APPROVER>');
    assert.equal(mentionUser('agent').text, 'agent');
    assert.equal(mentionUser('U1> <!channel').text, 'U1&gt; &lt;!channel');
  });
});

describe('modelMrkdwn', () => {
  it("keeps the model's bold, italics and code, and none of its links, mentions or pings", () => {
    const said = '*Cause:* _debug_ logging in `/var/log`; <!channel> see <https://evil.example|runbook>';
    assert.equal(
      modelMrkdwn(said).text,
      '*Cause:* _debug_ logging in `/var/log`; &lt;!channel&gt; see &lt;https://evil.example|runbook&gt;',
    );
  });

  it('closes a code block the model left open', () => {
    assert.equal(modelMrkdwn('```\nls').text, '```\nls\n```');
    assert.equal(modelMrkdwn('```\nls\n```').text, '```\nls\n```');
  });
});

describe('truncateMrkdwn', () => {
  it('cuts to length without cutting an escape in half', () => {
    const cut = truncateMrkdwn(md`${'a'.repeat(8)}${'<<<<'}`, 12);
    assert.ok(cut.text.length <= 12);
    assert.equal(cut.text, 'aaaaaaaa…');
    assert.equal(truncateMrkdwn(md`short`, 12).text, 'short');
  });

  it("keeps a section within Slack's 3000 characters", () => {
    const section = mrkdwnSection(md`${'<'.repeat(5000)}`);
    assert.ok(section.text.text.length <= 3000);
    assert.equal(section.text.verbatim, true);
  });
});
