/**
 * What `/investigate` and an @-mention in a thread ask for, parsed from their text. Pure, so the
 * help text and the grammar are tested without Slack.
 */

export type IncidentCommand =
  | { kind: 'open'; host: string; note: string }
  | { kind: 'status'; incident?: number }
  | { kind: 'set'; status: 'investigating' | 'mitigated' | 'resolved'; incident?: number }
  | { kind: 'summary'; incident?: number }
  | { kind: 'help'; problem?: string };

/**
 * The words `/investigate` understands besides a host name, as its help and the manifest's
 * usage_hint name them (aliases such as `resolved` or `mitigate` are accepted too). The manifest
 * test checks usage_hint against this list, and this list against the parser.
 */
export const INVESTIGATE_SUBCOMMANDS = [
  'status',
  'summary',
  'investigating',
  'mitigated',
  'resolve',
  'help',
] as const;

export const INVESTIGATE_HELP = [
  '*Usage*',
  // `<` and `>` as Slack's escapes: in mrkdwn `<host>` would be read as a link.
  '`/investigate &lt;host&gt; [note]`  open an incident for a host (or join its open one)',
  '`/investigate status|summary [#id]`  show an incident',
  '`/investigate investigating|mitigated|resolve [#id]`  change its state',
  '`/investigate help`  this help',
  'In an incident thread, mention me instead: `@nightshift status`.',
  'Without `#id`, the only open incident is meant.',
].join('\n');

const HOST = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}$/;

export function parseIncidentCommand(text: string): IncidentCommand {
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0 || ['help', '-h', '--help'].includes(words[0]!.toLowerCase()))
    return { kind: 'help' };
  const [first, ...rest] = words;
  const verb = first!.toLowerCase();
  const id = (() => {
    if (rest.length === 0) return undefined;
    const m = /^#?(\d{1,12})$/.exec(rest[0]!);
    return m ? Number(m[1]) : Number.NaN;
  })();
  const withId = <T extends object>(command: T) => {
    if (Number.isNaN(id))
      return { kind: 'help' as const, problem: `"${rest[0]}" is not an incident number like #12` };
    if (rest.length > 1)
      return { kind: 'help' as const, problem: `unexpected words after ${verb} ${rest[0]}` };
    return id === undefined ? command : { ...command, incident: id };
  };
  switch (verb) {
    case 'status':
      return withId({ kind: 'status' as const });
    case 'summary':
      return withId({ kind: 'summary' as const });
    case 'resolve':
    case 'resolved':
      return withId({ kind: 'set' as const, status: 'resolved' as const });
    case 'mitigated':
    case 'mitigate':
      return withId({ kind: 'set' as const, status: 'mitigated' as const });
    case 'investigating':
    case 'investigate':
      return withId({ kind: 'set' as const, status: 'investigating' as const });
  }
  if (!HOST.test(first!)) return { kind: 'help', problem: `"${first}" does not look like a host name` };
  return { kind: 'open', host: first!, note: rest.join(' ').slice(0, 500) };
}
