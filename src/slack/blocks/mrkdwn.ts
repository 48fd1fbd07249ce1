/**
 * The one way text from outside (alert labels, SQL errors, run and host output, findings, the
 * model's words, user input) enters Slack's mrkdwn, pure. Slack reads `<…>` as markup: `<!channel>`
 * and `<!here>` ping everyone, `<@U…>` mentions, `<https://…|words>` is a link whose address is
 * hidden behind the words. Slack's rule is to escape `&`, `<` and `>` as `&amp;`, `&lt;`, `&gt;`;
 * backticks are made look-alikes too, so outside text cannot open or close a code span or block
 * around the bot's own words. Everything the bot writes in mrkdwn is built with `md`, which escapes
 * whatever is put in it unless it is mrkdwn built the same way.
 */

/** Mrkdwn that is safe to send: the bot's own words, with outside text escaped in it. */
export class Mrkdwn {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

/** U+02CB MODIFIER LETTER GRAVE ACCENT: reads as a backtick, is not one for Slack. */
const NOT_A_BACKTICK = '\u02cb';

/** Slack's escaping (`&`, `<`, `>`) and no backticks: outside text shows as it is, and only as text. */
export function escapeMrkdwn(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('`', NOT_A_BACKTICK);
}

/** What escapeMrkdwn changed back, for readers other than Slack (the model); backticks stay look-alikes. */
export function unescapeMrkdwn(text: string): string {
  return text.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
}

/** Outside text, escaped; mrkdwn built by `md` as it is. */
export function asMrkdwn(value: unknown): Mrkdwn {
  return value instanceof Mrkdwn ? value : new Mrkdwn(escapeMrkdwn(String(value)));
}

/**
 * A template for mrkdwn: the literal parts are the bot's own markup, every value put in it is
 * escaped (a Mrkdwn value, built the same way, goes in as it is).
 */
export function md(strings: TemplateStringsArray, ...values: unknown[]): Mrkdwn {
  let text = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) text += asMrkdwn(values[i]).text + (strings[i + 1] ?? '');
  return new Mrkdwn(text);
}

/** Joins pieces (outside text escaped) with the bot's own separator. */
export function joinMrkdwn(parts: readonly unknown[], separator: string): Mrkdwn {
  return new Mrkdwn(parts.map((p) => asMrkdwn(p).text).join(separator));
}

/**
 * At most `max` characters of mrkdwn, ending with `…` when cut; an escape (`&lt;`) is never cut
 * in half.
 */
export function truncateMrkdwn(value: Mrkdwn, max: number): Mrkdwn {
  if (value.text.length <= max) return value;
  const cut = value.text.slice(0, Math.max(0, max - 1)).replace(/&[a-z]{0,4}$/, '');
  return new Mrkdwn(`${cut}…`);
}

/**
 * The model's words: its *bold*, _italic_, `code` and code blocks stay, but nothing it writes is
 * a link, a mention or a channel ping (`&`, `<`, `>` escaped), and a code block it left open is
 * closed, so it cannot swallow what the bot writes after it.
 */
export function modelMrkdwn(text: string): Mrkdwn {
  const escaped = text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
  const fences = escaped.split('```').length - 1;
  return new Mrkdwn(fences % 2 === 1 ? `${escaped}\n\`\`\`` : escaped);
}

/**
 * A link with the bot's own words as its label, to a URL from outside that was checked to be
 * http(s) (alerts/links.ts httpUrl): `&` is escaped as Slack asks, and `<`, `>` and `|`, which
 * would end the link or start its label, are percent-encoded, as a browser would send them.
 */
export function mrkdwnLink(url: string, label: Mrkdwn): Mrkdwn {
  const safe = url
    .replaceAll('&', '&amp;')
    .replaceAll('<', '%3C')
    .replaceAll('>', '%3E')
    .replaceAll('|', '%7C')
    .replaceAll(/\s/g, (c) => encodeURIComponent(c));
  return new Mrkdwn(`<${safe}|${label.text.replaceAll('|', '¦').replaceAll('>', '&gt;')}>`);
}

/** A user named by Slack id is mentioned; anyone else (`agent`, `nightshift`, a name) is text. */
export function mentionUser(user: string): Mrkdwn {
  return /^[UW][A-Z0-9]{2,}$/.test(user) ? new Mrkdwn(`<@${user}>`) : asMrkdwn(user);
}

/** A mrkdwn text object; verbatim, so Slack adds no links or mentions of its own to it either. */
export function mrkdwnText(value: Mrkdwn): { type: 'mrkdwn'; text: string; verbatim: true } {
  return { type: 'mrkdwn', text: value.text, verbatim: true };
}

/** A section of mrkdwn, cut to Slack's 3000 characters. */
export function mrkdwnSection(value: Mrkdwn): { type: 'section'; text: ReturnType<typeof mrkdwnText> } {
  return { type: 'section', text: mrkdwnText(truncateMrkdwn(value, 3000)) };
}
