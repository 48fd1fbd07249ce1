import type { Block, FindingNotice, SlackMessage } from './incident.ts';
import { joinMrkdwn, type Mrkdwn, md, mrkdwnSection, mrkdwnText, truncateMrkdwn } from './mrkdwn.ts';

/**
 * The answer of an analysis, pure: one thread message with the headline (the endless stream's URL
 * as a plain URL, the request the workers held with the customer it names), the top correlations
 * with their counts and stream flags, and what to look at next; everything else goes in a
 * Markdown file beside it (analysisMarkdown). Values come from the cores: they reach mrkdwn
 * through `md`, escaped, and never as links.
 */

export interface AnswerCorrelation {
  value: string;
  kind: string;
  dumps: number;
  total: number;
  stream: boolean;
  lowerBound?: boolean;
  why: string;
}

export interface AnalysisAnswerInput {
  incidentId: number;
  dumps: number;
  unreadable: number;
  /** Redacted, as stored. */
  findings: readonly FindingNotice[];
  /** Ranked, best first (already redacted by the analyzer). */
  correlations: readonly AnswerCorrelation[];
  nextSteps: readonly string[];
}

const SHOWN_CORRELATIONS = 5;
const SHOWN_STEPS = 3;
const VALUE_MAX = 300;

/**
 * The URL a stream correlation names, plain: itself for a URL; for a request line, the URL in
 * its query (`?url=http%3A%2F%2F…`), percent-decoded, or one written out in it.
 */
export function streamUrl(c: Pick<AnswerCorrelation, 'value' | 'kind'>): string {
  if (c.kind === 'url') return c.value;
  const encoded = /https?%3A%2F%2F[^\s&]+/i.exec(c.value)?.[0];
  if (encoded) {
    try {
      return decodeURIComponent(encoded.replaceAll('+', ' '));
    } catch {
      return encoded;
    }
  }
  return /https?:\/\/[^\s&"']+/.exec(c.value)?.[0] ?? c.value;
}

/** The customer (tenant, account, site) a request line names in its query, if any. */
export function customerOf(request: string): { key: string; id: string } | undefined {
  const m = /[?&]((?:customer|tenant|account|site|client|org)(?:_?id)?)=([^&\s#]+)/i.exec(request);
  if (!m) return undefined;
  let id = m[2]!;
  try {
    id = decodeURIComponent(id);
  } catch {}
  return { key: m[1]!, id };
}

const inDumps = (c: Pick<AnswerCorrelation, 'dumps' | 'total' | 'lowerBound'>) =>
  `${c.lowerBound ? 'at least ' : ''}${c.dumps} of ${c.total} dumps`;

const cut = (value: string) => (value.length > VALUE_MAX ? `${value.slice(0, VALUE_MAX - 1)}…` : value);

function headline(input: AnalysisAnswerInput): Mrkdwn[] {
  const lines: Mrkdwn[] = [];
  const stream = input.correlations.find((c) => c.stream && (c.kind === 'url' || c.kind === 'request'));
  if (stream)
    lines.push(
      md`:rotating_light: *Likely endless stream in ${inDumps(stream)}:*\n${cut(streamUrl(stream))}`,
    );
  const request =
    input.correlations.find((c) => c.kind === 'request' && customerOf(c.value)) ??
    input.correlations.find((c) => c.kind === 'request');
  if (request) {
    const who = customerOf(request.value);
    lines.push(
      md`*Request they held* (${inDumps(request)}${who ? `, ${who.key} ${who.id}` : ''}):\n${cut(request.value)}`,
    );
  }
  if (lines.length === 0) {
    const top =
      input.findings.find((f) => f.severity === 'critical') ??
      input.findings.find((f) => f.severity === 'warning') ??
      input.findings[0];
    if (top) lines.push(md`*${cut(top.title)}*`);
  }
  return lines;
}

/** The one line the root message shows once the analysis is done: the first line of the headline. */
export function analysisHeadline(
  input: Pick<AnalysisAnswerInput, 'correlations' | 'findings'>,
): string | undefined {
  const stream = input.correlations.find((c) => c.stream && (c.kind === 'url' || c.kind === 'request'));
  if (stream) return `Likely endless stream in ${inDumps(stream)}: ${cut(streamUrl(stream))}`;
  const top =
    input.findings.find((f) => f.severity === 'critical') ??
    input.findings.find((f) => f.severity === 'warning') ??
    input.findings[0];
  return top ? cut(top.title) : undefined;
}

export function analysisAnswer(input: AnalysisAnswerInput): SlackMessage {
  const title = md`:microscope: *Analysis of ${input.dumps} dump${input.dumps === 1 ? '' : 's'}* (#${input.incidentId})${input.unreadable > 0 ? md`, ${input.unreadable} file(s) unreadable` : ''}`;
  const head = headline(input);
  const blocks: Block[] = [mrkdwnSection(title)];
  if (head.length > 0) blocks.push(mrkdwnSection(truncateMrkdwn(joinMrkdwn(head, '\n\n'), 3000)));
  const top = input.correlations.slice(0, SHOWN_CORRELATIONS);
  if (top.length > 0)
    blocks.push(
      mrkdwnSection(
        truncateMrkdwn(
          joinMrkdwn(
            [
              md`*Top correlations*`,
              ...top.map(
                (c) =>
                  md`• ${c.stream ? ':loud_sound: stream · ' : ''}${c.kind} in ${inDumps(c)}: \`${cut(c.value)}\``,
              ),
            ],
            '\n',
          ),
          3000,
        ),
      ),
    );
  const steps = input.nextSteps.slice(0, SHOWN_STEPS);
  if (steps.length > 0)
    blocks.push(
      mrkdwnSection(
        truncateMrkdwn(
          joinMrkdwn([md`*Look at next*`, ...steps.map((s, i) => md`${i + 1}. ${cut(s)}`)], '\n'),
          3000,
        ),
      ),
    );
  blocks.push({
    type: 'context',
    elements: [
      mrkdwnText(
        md`All ${input.findings.length} findings, ${input.correlations.length} correlations and next steps: the file below.`,
      ),
    ],
  });
  const text = joinMrkdwn([title, ...head.slice(0, 1)], '\n');
  return { text: truncateMrkdwn(text, 3000).text, blocks };
}

/** Everything of the analysis, as a Markdown file for the thread (not mrkdwn: plain text). */
export function analysisMarkdown(input: AnalysisAnswerInput): string {
  const fence = (value: string) => `\`${value.replaceAll('`', 'ˋ')}\``;
  return [
    `# Analysis of ${input.dumps} dump(s), incident #${input.incidentId}`,
    '',
    ...(input.unreadable > 0 ? [`${input.unreadable} file(s) could not be read.`, ''] : []),
    '## Findings',
    '',
    ...input.findings.flatMap((f) => [
      `- **${f.severity}** ${f.title}`,
      `  ${f.detail.replaceAll('\n', '\n  ')}`,
    ]),
    '',
    '## Correlations',
    '',
    ...input.correlations.map(
      (c) =>
        `- ${c.kind} in ${inDumps(c)}${c.stream ? ' (stream)' : ''}: ${fence(c.value)}${c.why ? ` (${c.why})` : ''}`,
    ),
    '',
    '## Next steps',
    '',
    ...input.nextSteps.map((s, i) => `${i + 1}. ${s}`),
    '',
  ].join('\n');
}
