import { createHash } from 'node:crypto';
import type { ProposalKind, ProposalState } from '../../approvals/proposal.ts';
import type { Block, SlackMessage } from './incident.ts';
import {
  joinMrkdwn,
  type Mrkdwn,
  md,
  mentionUser,
  mrkdwnSection,
  mrkdwnText,
  truncateMrkdwn,
} from './mrkdwn.ts';

/**
 * Block Kit for a proposal, pure: the exact text that would run (all of it, in code blocks; it is
 * what the approver approves), where it runs, why, what to look out for, and its state, which the
 * message shows as it changes: pending → approved by @x (time) → running → done/failed.
 * The buttons carry the proposal's hash, so a click approves the text shown and nothing else.
 * A text too long to show (PROPOSAL_INLINE_MAX, counted as shown) goes to the thread as a file
 * instead, the message naming the file and the whole hash, so the message always stays within
 * Slack's 50 blocks and can be approved. Targets, names and run summaries reach mrkdwn escaped.
 */

export const APPROVE_ACTION = 'proposal_approve';
export const REJECT_ACTION = 'proposal_reject';
/** Reactions on a proposal's message that approve or reject it, as the buttons do. */
export const APPROVE_REACTIONS = new Set(['white_check_mark', 'heavy_check_mark', 'ballot_box_with_check']);
export const REJECT_REACTIONS = new Set(['x', 'negative_squared_cross_mark', 'no_entry_sign']);

export interface ProposalView {
  id: number;
  kind: ProposalKind;
  target: string;
  text: string;
  sha256: string;
  why: string;
  expects: string;
  state: ProposalState;
  proposedBy: string;
  expiresAt: Date;
  approvalsRequired: number;
  decisions: ReadonlyArray<{
    decision: 'approved' | 'rejected';
    decidedBy: string;
    via: string;
    decidedAt: Date;
  }>;
  risks: readonly string[];
  run?: { state: 'running' | 'succeeded' | 'failed'; summary?: string } | undefined;
}

const STATE_LINE: Record<ProposalState, string> = {
  pending: ':hourglass_flowing_sand: Waiting for approval',
  approved: ':white_check_mark: Approved',
  rejected: ':no_entry: Rejected',
  expired: ':alarm_clock: Expired unapproved',
  running: ':gear: Running',
  done: ':white_check_mark: Done',
  failed: ':x: Failed',
};

const WHERE: Record<ProposalKind, (target: string) => string> = {
  script: (t) => (t === 'evidence' ? 'in the local evidence sandbox' : `on host ${t} over SSH`),
  sql: (t) => `read-only SQL on database ${t}`,
  pull: (t) => `pull from host ${t}`,
  free: (t) => `delete pulled cores on host ${t} over SSH`,
};

const clock = (d: Date) => `${d.toISOString().slice(11, 16)} UTC`;
const who = mentionUser;
/**
 * Characters a reader cannot see or that reorder what they see, shown as ⟦U+XXXX⟧ markers:
 * controls but tab and newline, every format character (zero-width, soft hyphen, direction
 * marks and overrides, tags), variation selectors, fillers that draw nothing, line separators.
 */
const HIDDEN =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\p{Cf}\u115f\u1160\u3164\uffa0\u2028\u2029\p{Variation_Selector}]/gu;

/** The code points in a text that a reviewer would not see, with where they are. */
export function hiddenCharacters(text: string): Array<{ at: number; codePoint: string }> {
  return [...text.matchAll(HIDDEN)].map((m) => ({
    at: m.index,
    codePoint: `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`,
  }));
}

const marker = (c: string) => `⟦U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}⟧`;

/**
 * Combining marks past the second on one letter: real scripts stack two at most, more pile up
 * into a smear that can hide the line above or below it.
 */
const STACKED = /(?<=\p{M}\p{M})\p{M}/gu;

/** How many combining marks stack past the second on their letter. */
export function stackedMarks(text: string): number {
  return [...text.matchAll(STACKED)].length;
}

/** What a reviewer sees: the text itself, with anything invisible or stacked made visible. */
export function visibleText(text: string): string {
  return text.replace(HIDDEN, marker).replace(STACKED, marker);
}

/**
 * The longest text shown in the message itself, counted as shown (each invisible character is
 * a ⟦U+…⟧ marker): four code blocks, a few screens on a phone. A longer one goes to a file.
 */
export const PROPOSAL_INLINE_MAX = 11_600;

/** Whether the text is shown in the message, or only in a file beside it (proposalFile). */
export function proposalTextFits(text: string): boolean {
  return visibleText(text).length <= PROPOSAL_INLINE_MAX;
}

/**
 * The file a text too long to show goes to: the exact text to approve, as UTF-8, and the sha256
 * of those bytes (what `sha256sum` says of the downloaded file; the proposal's own hash covers
 * its kind and target too).
 */
export function proposalFile(view: Pick<ProposalView, 'id' | 'text' | 'sha256'>): {
  content: string;
  filename: string;
  title: string;
  comment: string;
  sha256: string;
} {
  const sha256 = createHash('sha256').update(view.text, 'utf8').digest('hex');
  return {
    content: view.text,
    filename: `proposal-${view.id}.txt`,
    title: `Proposal #${view.id}: the exact text to approve`,
    comment:
      md`The exact text of proposal #${view.id}. sha256 of this file: \`${sha256}\` (the proposal's hash: \`${view.sha256}\`).`
        .text,
    sha256,
  };
}

/** Rich text blocks hold plain text: no mrkdwn, links, mentions or code fences can change what shows. */
const CHUNK = 2900;

/** The exact text in as many preformatted blocks as it takes: never cut, since this is what gets approved. */
export function codeBlocks(text: string): Block[] {
  const shown = visibleText(text);
  const blocks: Block[] = [];
  for (let i = 0; i < shown.length || i === 0; i += CHUNK) {
    blocks.push({
      type: 'rich_text',
      elements: [
        {
          type: 'rich_text_preformatted',
          elements: [{ type: 'text', text: shown.slice(i, i + CHUNK) || ' ' }],
        },
      ],
    });
  }
  return blocks;
}

/** Plain text (no formatting, links or mentions) for what the proposer wrote about it. */
const plain = (text: string): Block => ({
  type: 'section',
  text: { type: 'plain_text', text: visibleText(text).slice(0, 2900) || ' ', emoji: false },
});

/** What stands for a text too long to show: where the file is, its hash, and how it starts. */
function fileNotice(view: ProposalView): Block[] {
  const shown = visibleText(view.text);
  const file = proposalFile(view);
  return [
    mrkdwnSection(
      md`:page_facing_up: The text is too long to show here (${shown.length.toLocaleString('en')} characters as shown, ${view.text.length.toLocaleString('en')} in the text). The whole text is the file *${file.filename}* in this thread, sha256 \`${file.sha256}\`: read it there before approving. It starts:`,
    ),
    ...codeBlocks(`${[...view.text].slice(0, 300).join('')}…`),
  ];
}

export function proposalMessage(view: ProposalView, now: Date): SlackMessage {
  const where = truncateMrkdwn(md`${WHERE[view.kind](view.target)}`, 300);
  const blocks: Block[] = [mrkdwnSection(headline(view, where, now))];
  if (view.why) blocks.push(plain(`Why: ${view.why}`));
  const fits = proposalTextFits(view.text);
  blocks.push(...(fits ? codeBlocks(view.text) : fileNotice(view)));
  if (view.expects) blocks.push(plain(`Expects: ${view.expects.slice(0, 500)}`));
  blocks.push(cautionNotes(view, fits));
  if (view.run?.summary) blocks.push(mrkdwnSection(truncateMrkdwn(md`${view.run.summary}`, 2900)));
  if (view.state === 'pending') blocks.push(...decisionBlocks(view));
  return {
    text: md`Proposal #${view.id} (${where}): ${STATE_LINE[view.state].replace(/^:[a-z_]+: /, '')}`.text,
    blocks,
  };
}

/** The message's first lines: the proposal and where it runs, its state, who approved it. */
function headline(view: ProposalView, where: Mrkdwn, now: Date): Mrkdwn {
  const approvals = view.decisions.filter((d) => d.decision === 'approved');
  const rejection = view.decisions.find((d) => d.decision === 'rejected');
  const stateLine = ((): Mrkdwn => {
    const base = STATE_LINE[view.state];
    if (view.state === 'pending') {
      const left = Math.max(0, Math.round((view.expiresAt.getTime() - now.getTime()) / 60_000));
      return md`${base}: ${approvals.length} of ${view.approvalsRequired}, expires ${clock(view.expiresAt)} (${left} min)`;
    }
    if (view.state === 'rejected' && rejection)
      return md`${base} by ${who(rejection.decidedBy)} (${clock(rejection.decidedAt)}, ${rejection.via})`;
    return md`${base}`;
  })();
  const approvedBy =
    approvals.length > 0
      ? md`Approved by ${joinMrkdwn(
          approvals.map((a) => md`${who(a.decidedBy)} (${clock(a.decidedAt)}, ${a.via})`),
          ', ',
        )}`
      : undefined;
  const header = md`*Proposal #${view.id}* · ${where}`;
  return joinMrkdwn(
    [header, stateLine, ...(approvedBy && view.state !== 'pending' ? [approvedBy] : [])],
    '\n',
  );
}

/** What to look at twice (hidden characters, stacked marks, a text not shown, the risk notes), and the hash. */
function cautionNotes(view: ProposalView, fits: boolean): Block {
  const hidden = hiddenCharacters(view.text);
  const stacked = stackedMarks(view.text);
  const risks = [
    ...(hidden.length > 0
      ? [`${hidden.length} invisible or direction-changing character(s), shown as ⟦U+…⟧: read it twice`]
      : []),
    ...(stacked > 0 ? [`${stacked} combining mark(s) stacked on one letter, shown as ⟦U+…⟧`] : []),
    ...(fits ? [] : ['too long to show here: read the file']),
    ...view.risks,
  ];
  const notes = [
    risks.length > 0
      ? truncateMrkdwn(md`:warning: ${risks.join(' · ')}`, 2000)
      : md`:white_circle: nothing in the text stood out`,
    md`sha256 \`${view.sha256.slice(0, 16)}\` · asked by ${who(view.proposedBy)}`,
  ];
  return { type: 'context', elements: [mrkdwnText(joinMrkdwn(notes, '\n'))] };
}

/** Approve and Reject, and the reactions that do the same: for a pending proposal. */
function decisionBlocks(view: ProposalView): Block[] {
  const value = `${view.id}:${view.sha256}`;
  return [
    {
      type: 'actions',
      block_id: `proposal:${view.id}`,
      elements: [
        {
          type: 'button',
          action_id: APPROVE_ACTION,
          style: 'primary',
          text: { type: 'plain_text', text: 'Approve' },
          value,
          ...approveConfirm(view),
        },
        {
          type: 'button',
          action_id: REJECT_ACTION,
          style: 'danger',
          text: { type: 'plain_text', text: 'Reject' },
          value,
        },
      ],
    },
    {
      type: 'context',
      elements: [mrkdwnText(md`Or react :white_check_mark: to approve, :x: to reject.`)],
    },
  ];
}

/** `<id>:<sha256>` from a button's value; undefined when it is not one of ours. */
export function parseProposalValue(value: string | undefined): { id: number; sha256: string } | undefined {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(value ?? '');
  return m ? { id: Number(m[1]), sha256: m[2]! } : undefined;
}

/**
 * Risk notes (approvals/risk.ts) of a proposal that changes something where it runs: one with any
 * asks "are you sure?" before Approve counts. A pull writes only on the bot's own host.
 */
const CHANGES =
  /^(deletes files|writes files|changes containers|stops or restarts processes)$|not a plain read/;

/**
 * Slack's confirmation dialog on Approve, for a proposal whose risk notes (approvals/risk.ts) say
 * it deletes or writes: a tap in a pocket does not approve a deletion. Plain text, within Slack's
 * lengths (title 100, text 300, buttons 30).
 */
export function approveConfirm(view: Pick<ProposalView, 'id' | 'risks'>): { confirm?: object } {
  const risky = view.risks.filter((r) => CHANGES.test(r));
  if (risky.length === 0) return {};
  const text = `Proposal #${view.id} ${risky.join(', ')}. Approve it to run as shown?`;
  return {
    confirm: {
      title: { type: 'plain_text', text: `Approve #${view.id}?`.slice(0, 100) },
      text: { type: 'plain_text', text: text.length > 300 ? `${text.slice(0, 299)}…` : text },
      confirm: { type: 'plain_text', text: 'Approve' },
      deny: { type: 'plain_text', text: 'Cancel' },
      style: 'danger',
    },
  };
}
