import type { FakeFile, FakeMessage, FakeSlack } from './fake-slack.ts';

/**
 * A thread as a person reads it in Slack, from the fake Slack's record: the root, then each reply
 * and each file shared in the thread in the order Slack shows them, each message at its last
 * version with how many times it was edited, its buttons, and a file by its title and comment.
 * For the README's "the thread, message by message" (docs/seed-thread.md), written by the
 * end-to-end test of the seed incident when NIGHTSHIFT_RECORD_THREAD names a file.
 */
export function threadTranscript(slack: FakeSlack, channel: string, rootTs: string): string {
  const root = slack.message(channel, rootTs);
  const replies: Array<{ ts: string; text: string }> = [
    ...slack
      .thread(channel, rootTs)
      .filter((m) => m.ts !== rootTs)
      .map((m) => ({ ts: m.ts, text: shown(m) })),
    ...slack.files.flatMap((f) =>
      f.shares
        .filter((s) => s.channel_id === channel && s.thread_ts === rootTs)
        .map((s) => ({ ts: s.ts, text: fileShown(f, s.initial_comment) })),
    ),
  ].sort((a, b) => Number(a.ts) - Number(b.ts));
  const lines = [`**Root**${root ? shown(root) : ' (not posted)'}`];
  replies.forEach((r, i) => {
    lines.push(`**${i + 1}.**${r.text}`);
  });
  return `${lines.join('\n\n')}\n`;
}

function shown(m: FakeMessage): string {
  const edits =
    m.history.length > 0 ? ` _(edited ${m.history.length} time${m.history.length === 1 ? '' : 's'})_` : '';
  const body = blocksText(m.blocks) || (m.text ?? '');
  return `${edits}\n\n${quote(body)}`;
}

function fileShown(f: FakeFile, comment: string | undefined): string {
  return `\n\n${quote(`${comment ? `${comment}\n` : ''}📎 ${f.title ?? f.filename} (${f.filename}, ${f.length} bytes)`)}`;
}

const quote = (text: string) =>
  text
    .split('\n')
    .map((l) => `> ${l}`)
    .join('\n');

type AnyBlock = {
  type?: string;
  text?: { text?: string };
  fields?: Array<{ text?: string }>;
  elements?: Array<{ type?: string; text?: string | { text?: string }; url?: string }>;
};

/** The text of Block Kit blocks as Slack lays them out: sections, context, buttons in brackets. */
function blocksText(blocks: unknown[] | undefined): string {
  if (!blocks) return '';
  return (blocks as AnyBlock[])
    .map((b) => {
      if (b.type === 'section' || b.type === 'header')
        return [b.text?.text ?? '', ...(b.fields ?? []).map((f) => f.text ?? '')].filter(Boolean).join('\n');
      if (b.type === 'context')
        return (b.elements ?? []).map((e) => (typeof e.text === 'string' ? e.text : '')).join(' ');
      if (b.type === 'actions')
        return (b.elements ?? [])
          .map((e) => `[${typeof e.text === 'object' ? (e.text?.text ?? '') : ''}]`)
          .join(' ');
      if (b.type === 'divider') return '———';
      return '';
    })
    .filter(Boolean)
    .join('\n');
}
