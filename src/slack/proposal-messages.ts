import { redact } from '../analyze/redact.ts';
import { isApprover, type Policy } from '../approvals/policy.ts';
import type { ProposalState } from '../approvals/proposal.ts';
import { riskNotes } from '../approvals/risk.ts';
import { getProposal, getRun, listApprovals, type Proposal } from '../approvals/service.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { proposalMessageKey } from '../store/message-keys.ts';
import { postedMessageAt } from '../store/outbox.ts';
import { queueThreadMessage } from '../store/records.ts';
import { type ProposalView, proposalFile, proposalMessage, proposalTextFits } from './blocks/proposal.ts';
import type { SlackPoster } from './poster.ts';
import { editThreadMessage } from './thread-edits.ts';

/**
 * A proposal's message in the incident thread: queued through the outbox once (key
 * `proposal:<id>`), then edited in place at every change of state. Before Slack has it, the
 * queued body itself is rewritten, so the first post already shows the latest state. A text too
 * long to show in the message is queued once more, right after it, as a file (`proposal:<id>:file`).
 * Several processes edit it (the approval's listener, the runner, the sweeper), each from what it
 * read: an edit ranks by what it shows (proposalMessageRank), and one below what the message holds
 * is refused, so the message never steps back (running → approved).
 */

export { proposalMessageKey };

/** How far along a state is: pending, approved, running, then the ends (done, failed, rejected, expired). */
const STATE_RANK: Record<ProposalState, number> = {
  pending: 0,
  approved: 1,
  running: 2,
  done: 3,
  failed: 3,
  rejected: 3,
  expired: 3,
};

/**
 * Where a rendering of a proposal stands among its message's edits: its state, then how many
 * decisions it shows (approvals are never removed), then whether it has the run's summary.
 */
export function proposalMessageRank(view: Pick<ProposalView, 'state' | 'decisions' | 'run'>): number {
  return (
    STATE_RANK[view.state] * 100_000 +
    Math.min(view.decisions.length, 9999) * 10 +
    (view.run?.summary ? 1 : 0)
  );
}

export async function proposalView(db: Db, id: number): Promise<ProposalView | undefined> {
  const proposal = await getProposal(db, id);
  if (!proposal) return undefined;
  const [decisions, run] = await Promise.all([listApprovals(db, id), getRun(db, id)]);
  return {
    ...proposal,
    // The model's words, shown in Slack: redacted like everything else that leaves the bot.
    why: redact(proposal.why).text,
    expects: redact(proposal.expects).text,
    decisions,
    risks: riskNotes(proposal),
    run: run ? { state: run.state } : undefined,
  };
}

export async function queueProposalMessage(
  db: Db,
  proposal: Proposal,
  channel: string,
  now: Date,
): Promise<void> {
  const view = await proposalView(db, proposal.id);
  if (!view) return;
  const message = proposalMessage(view, now);
  await queueThreadMessage(db, {
    incidentId: proposal.incidentId,
    key: proposalMessageKey(proposal.id),
    fallbackChannel: channel,
    body: { type: 'text', text: message.text, blocks: message.blocks },
  });
  if (proposalTextFits(view.text)) return;
  const file = proposalFile(view);
  await queueThreadMessage(db, {
    incidentId: proposal.incidentId,
    key: proposalMessageKey(proposal.id, 'file'),
    fallbackChannel: channel,
    body: {
      type: 'file',
      content: file.content,
      filename: file.filename,
      title: file.title,
      comment: file.comment,
    },
  });
}

/** Re-renders a proposal's message: in Slack when it is posted (and Slack is on), else in the outbox. */
export async function refreshProposalMessage(
  db: Db,
  slack: SlackPoster | undefined,
  id: number,
  now: Date,
  runSummary?: string,
  log?: Pick<Logger, 'warn' | 'error'>,
): Promise<void> {
  const view = await proposalView(db, id);
  if (!view) return;
  if (runSummary && view.run) view.run.summary = runSummary;
  await editThreadMessage(db, slack, proposalMessageKey(id), proposalMessage(view, now), {
    log,
    rank: proposalMessageRank(view),
  });
}

/**
 * The proposal whose message this is (for reactions), if any, and the thread it is in: the
 * incident's root, which is what a reply to it (an ephemeral answer) names as its thread_ts.
 * Slack asks for the parent's ts there, never a reply's.
 */
export async function proposalByMessage(
  db: Db,
  channel: string,
  ts: string,
): Promise<{ proposalId: number; threadTs: string } | undefined> {
  const found = await postedMessageAt(db, { channel, ts, keyPrefix: 'proposal:' });
  return found
    ? { proposalId: Number(found.dedupKey.slice('proposal:'.length)), threadTs: found.rootTs ?? ts }
    : undefined;
}

/** The members of a user group, as Slack's usergroups.users.list answers. */
export type GroupMembers = (group: string) => Promise<string[]>;

/**
 * Whether a user may approve: listed by id, or a member of a listed user group. Group members
 * are cached for a minute, so a burst of reactions is not a burst of API calls; a failed lookup
 * counts as "not a member" (refusing is the safe side) and is logged.
 */
export function approverCheck(policy: Policy, members: GroupMembers, log: Logger, ttlMs = 60_000) {
  const cache = new Map<string, { at: number; users: string[] }>();
  return async (user: string): Promise<boolean> => {
    if (isApprover(policy, user, [])) return true;
    const groups: string[] = [];
    for (const group of policy.approvers.usergroups) {
      let entry = cache.get(group);
      if (!entry || Date.now() - entry.at > ttlMs) {
        try {
          entry = { at: Date.now(), users: await members(group) };
          cache.set(group, entry);
        } catch (error) {
          log.warn({ err: error, group }, 'could not list the members of an approver group');
          continue;
        }
      }
      if (entry.users.includes(user)) groups.push(group);
    }
    return isApprover(policy, user, groups);
  };
}
