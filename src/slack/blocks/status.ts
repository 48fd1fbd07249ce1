import type { Block, SlackMessage } from './incident.ts';
import { joinMrkdwn, Mrkdwn, md, mrkdwnSection, truncateMrkdwn } from './mrkdwn.ts';

/**
 * The incident's one status message, pure: a line per phase (collection, pull, analysis), each
 * edited in place from "running" to its counts, so the thread's replies are left for what a
 * person reads or decides. The lines are mrkdwn the bot built with `md` (hosts, paths and errors
 * escaped there).
 */

/** The phases, in the order they happen and show. */
export const PROGRESS_PHASES = ['collection', 'pull', 'analysis'] as const;
export type ProgressPhase = (typeof PROGRESS_PHASES)[number];

export interface ProgressLine {
  phase: ProgressPhase;
  line: Mrkdwn;
}

/** Slack's section text is at most 3,000 characters; each line gets a share of it. */
const LINE_MAX = 900;

export function statusMessage(incidentId: number, lines: readonly ProgressLine[]): SlackMessage {
  const ordered = [...lines].sort(
    (a, b) => PROGRESS_PHASES.indexOf(a.phase) - PROGRESS_PHASES.indexOf(b.phase),
  );
  const body = joinMrkdwn(
    ordered.map((l) => truncateMrkdwn(l.line, LINE_MAX)),
    '\n',
  );
  const title = md`*Progress on #${incidentId}*`;
  const blocks: Block[] = [mrkdwnSection(new Mrkdwn(`${title.text}\n${body.text}`))];
  // `text` is what a notification shows: the latest phase's line alone.
  const latest = ordered.at(-1)?.line ?? md`Starting…`;
  return { text: truncateMrkdwn(latest, LINE_MAX).text, blocks };
}
