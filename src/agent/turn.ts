import { KnownSecrets, redact } from '../analyze/redact.ts';
import {
  type ApprovalRecord,
  getProposal,
  listApprovals,
  type Proposal,
  proposalOfToolUse,
} from '../approvals/service.ts';
import type { SqlDatabase } from '../config/sql-databases.ts';
import { recallSecrets } from '../evidence/known-secrets.ts';
import { getIncident } from '../incidents/incidents.ts';
import type { Services } from '../services.ts';
import { joinMrkdwn, md, modelMrkdwn, unescapeMrkdwn } from '../slack/blocks/mrkdwn.ts';
import { queueProposalMessage } from '../slack/proposal-messages.ts';
import {
  appendMessage,
  claimTurn,
  closedUntold,
  loadConversation,
  markBudgetSpent,
  markTold,
  releaseTurn,
  type StoredMessage,
  spend,
  type Told,
  untoldRuns,
} from '../store/agent.ts';
import type { Db } from '../store/db.ts';
import { findingsOf } from '../store/findings.ts';
import { agentNoticeKey, agentTurnKey } from '../store/message-keys.ts';
import { queueThreadMessage } from '../store/records.ts';
import type { ContentBlock, ModelClient, TextBlock, ToolResultBlock, ToolUseBlock } from './client.ts';
import { forModel, unansweredToolUses } from './conversation.ts';
import { evidenceBlock, systemPrompt } from './prompt.ts';
import { AGENT_TOOLS } from './tools/index.ts';
import { findingLine } from './tools/list-findings.ts';
import { recordedOutcome } from './tools/propose.ts';
import {
  type AgentTool,
  type CheckSqlOnDatabase,
  callTool,
  type ToolContext,
  toolResult,
  toolSpec,
} from './tools/tool.ts';

/**
 * One step of the agent on an incident: tell the model what is new (findings since its last
 * turn, the result of a run it proposed, or that a proposal of its own was rejected or expired),
 * let it read with the read-only tools as long as it wants, and stop when it ends its turn or
 * proposes something (it waits for that result). The conversation and the budget live in the
 * database; the turn ends with a short message to the thread.
 */

export interface AgentDeps
  extends Pick<Services, 'db' | 'log' | 'now' | 'policy' | 'channel' | 'evidenceDir'> {
  model: ModelClient;
  /** Host names from the hosts file. */
  hosts: readonly string[];
  /** The databases SQL may be proposed for (the model sees their names only). */
  sqlDatabases: readonly SqlDatabase[];
  /** Asks the target database what a proposed statement's names resolve to there, before it is proposed. */
  checkSql?: CheckSqlOnDatabase | undefined;
  /** AGENT_MAX_TURNS: model calls per incident. */
  maxTurns: number;
  /** AGENT_MAX_TOKENS: tokens per incident (input, output and cache, summed). */
  maxTokens: number;
  /** max_tokens of one answer. Default 4096. */
  maxOutputTokens?: number;
  tools?: readonly AgentTool[];
  kick?: (() => void) | undefined;
}

export type TurnOutcome =
  /** Another turn of this incident holds the lease: try again shortly. */
  | { kind: 'busy' }
  /** Nothing new to tell the model: no call was made. */
  | { kind: 'nothing_new' }
  | { kind: 'budget_spent' }
  | { kind: 'ended'; calls: number }
  | { kind: 'proposed'; calls: number; proposals: number[] };

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The thread's notice, once per incident: the agent has no key. */
export async function agentOffNotice(db: Db, incidentId: number, channel: string): Promise<void> {
  await queueThreadMessage(db, {
    incidentId,
    key: agentNoticeKey(incidentId, 'off'),
    fallbackChannel: channel,
    body: {
      type: 'text',
      text: ':zzz: The agent is off (no ANTHROPIC_API_KEY): findings are posted as usual, and nothing is proposed by a model.',
      blocks: [],
    },
  });
}

interface News {
  blocks: TextBlock[];
  /** What these blocks tell, marked told with them. */
  told: Told;
}

/**
 * What the model is told when a proposal of its own closed without running, so that it stops
 * waiting for a result: which proposal (kind, target, short hash), how it closed, and who
 * decided, inside evidence delimiters as everything a person or a system outside wrote is.
 */
export function closedText(
  p: Pick<Proposal, 'id' | 'kind' | 'target' | 'sha256' | 'state' | 'expiresAt' | 'approvalsRequired'>,
  approvals: readonly ApprovalRecord[],
  clean: (text: string) => string,
): string {
  const what = `Proposal #${p.id} (${p.kind} on ${p.target}, sha256 ${p.sha256.slice(0, 12)})`;
  const next =
    'If you still need what it would have shown, propose another way to find it out; otherwise conclude from the evidence you have.';
  const said = (a: ApprovalRecord) =>
    `${a.decision} by ${a.decidedBy} (${a.via}) at ${a.decidedAt.toISOString()}`;
  if (p.state === 'rejected') {
    const rejection = approvals.filter((a) => a.decision === 'rejected').at(-1);
    return `${what} was rejected: it did not run and will not. ${next}\n${evidenceBlock(`decision on proposal ${p.id}`, clean(rejection ? said(rejection) : 'rejected'))}`;
  }
  const approved = approvals.filter((a) => a.decision === 'approved');
  if (approved.length >= p.approvalsRequired)
    return `${what} expired: it was approved, but its run did not start in time, so it did not run. ${next}\n${evidenceBlock(`decisions on proposal ${p.id}`, clean(approved.map(said).join('\n')))}`;
  return `${what} expired unapproved at ${p.expiresAt.toISOString()}: no approver approved it in time, so it did not run. ${next}`;
}

/** What the model has not been told yet, as user-turn text (evidence inside delimiters). */
async function whatIsNew(
  deps: AgentDeps,
  incidentId: number,
  first: boolean,
  clean: (text: string) => string,
): Promise<News> {
  const intro = first ? await incidentIntro(deps, incidentId, clean) : undefined;
  const findings = await newFindings(deps.db, incidentId, clean);
  const runs = await finishedRuns(deps.db, incidentId, clean);
  const closed = await closedProposals(deps.db, incidentId, clean);
  return {
    blocks: [...(intro ? [intro] : []), ...findings.blocks, ...runs.blocks, ...closed.blocks],
    told: { findings: findings.told, runs: runs.told, closedProposals: closed.told },
  };
}

/** Told blocks and the ids of what they tell. */
interface Telling {
  blocks: TextBlock[];
  told: number[];
}

const text = (t: string): TextBlock => ({ type: 'text', text: t });

/** The first message's introduction: the incident, and the hosts and databases the model may propose on. */
async function incidentIntro(
  deps: AgentDeps,
  incidentId: number,
  clean: (text: string) => string,
): Promise<TextBlock | undefined> {
  const incident = await getIncident(deps.db, incidentId);
  if (!incident) return undefined;
  // The host and the problem are an alert's labels, written by whoever can send alerts: data.
  // A host named in the hosts file (letters, digits, ".", "_", "-") may also be said plainly.
  const listed = deps.hosts.includes(incident.host)
    ? ` Its host, ${incident.host}, is in the hosts file.`
    : '';
  return text(
    `Incident #${incident.id}, ${incident.status}, severity ${incident.severity}, opened ${incident.openedAt.toISOString()}.${listed} Its host, problem and title, as the alert gave them:\n${evidenceBlock('incident host, problem and title', clean(`host: ${incident.host}\nproblem: ${incident.problem}\ntitle: ${incident.title}`))}\nHosts you may propose scripts on: ${deps.hosts.join(', ') || 'none'}. Databases you may propose SQL on: ${deps.sqlDatabases.map((d) => d.name).join(', ') || 'none'}.`,
  );
}

async function newFindings(db: Db, incidentId: number, clean: (text: string) => string): Promise<Telling> {
  const findings = await findingsOf(db, { incidentId, untold: true }, 200);
  if (findings.length === 0) return { blocks: [], told: [] };
  const lines = findings.map((f) => findingLine(f, 1500));
  return {
    blocks: [
      text(
        `${plural(findings.length, 'new finding')} since your last turn (list_findings shows all, with the correlations):\n${evidenceBlock('findings', clean(lines.join('\n')))}`,
      ),
    ],
    told: findings.map((f) => f.id),
  };
}

async function finishedRuns(db: Db, incidentId: number, clean: (text: string) => string): Promise<Telling> {
  const runs = await untoldRuns(db, incidentId);
  const blocks = runs.map((r) => {
    // What the thread showed, as text again (it was escaped for Slack's mrkdwn).
    const output = [
      unescapeMrkdwn(r.postedText ?? ''),
      `result: ${JSON.stringify(r.result)}`,
      r.error ? `error: ${r.error}` : '',
    ]
      .filter(Boolean)
      .join('\n')
      .slice(0, 20_000);
    return text(
      `Proposal #${r.proposalId} (${r.kind} on ${r.target}) ran: ${r.state}, exit code ${r.exitCode ?? 'none'}, ${r.outputBytes} bytes of output.\n${evidenceBlock(`run ${r.id} of proposal ${r.proposalId}`, clean(output))}`,
    );
  });
  return { blocks, told: runs.map((r) => r.id) };
}

async function closedProposals(
  db: Db,
  incidentId: number,
  clean: (text: string) => string,
): Promise<Telling> {
  const told: number[] = [];
  const blocks: TextBlock[] = [];
  for (const { id } of await closedUntold(db, { incidentId })) {
    const proposal = await getProposal(db, id);
    if (!proposal) continue;
    told.push(id);
    blocks.push(text(closedText(proposal, await listApprovals(db, id), clean)));
  }
  return { blocks, told };
}

/**
 * The secrets found in the incident's findings, so their bare copies can be hidden too. Findings
 * are stored redacted: the values are kept beside the evidence (evidence/known-secrets.ts). Rows
 * stored before that, in plain text, still give theirs through redact().
 */
export async function incidentSecrets(
  db: Db,
  incidentId: number,
  evidenceDir?: string,
): Promise<KnownSecrets> {
  const known = new KnownSecrets();
  if (evidenceDir) known.add(await recallSecrets(evidenceDir, incidentId));
  for (const f of await findingsOf(db, { incidentId }, 5000))
    known.add(redact(`${f.title}\n${JSON.stringify(f.body)}`).secrets);
  return known;
}

/** A short line of what the agent looked at this turn, for the thread (the model's arguments escaped). */
function looked(uses: readonly ToolUseBlock[]) {
  if (uses.length === 0) return '';
  const parts = uses.map((u) => {
    const input = (u.input ?? {}) as Record<string, unknown>;
    const arg = input.pattern ?? input.value ?? input.host ?? input.where ?? input.database;
    return typeof arg === 'string' ? `${u.name} "${arg.slice(0, 60)}"` : u.name;
  });
  return md`\n_Looked at: ${joinMrkdwn(parts, ', ')}_`;
}

async function postTurn(
  deps: AgentDeps,
  incidentId: number,
  key: string,
  text: string,
  uses: readonly ToolUseBlock[],
  proposals: readonly number[],
) {
  const said = text.trim() || (proposals.length > 0 ? 'I proposed the next step.' : 'I have nothing to add.');
  const proposed =
    proposals.length > 0
      ? `\nProposed: ${proposals.map((id) => `#${id}`).join(', ')} (waiting for an approver; nothing ran)`
      : '';
  // The model's words keep its bold, italics and code, and lose any link, mention or ping.
  const cut = said.length > 3300 ? `${said.slice(0, 3300)}…` : said;
  const words = modelMrkdwn(redact(cut).text);
  const body = redact(md`:robot_face: *Agent:* ${words}${proposed}${looked(uses)}`.text).text;
  await queueThreadMessage(deps.db, {
    incidentId,
    key,
    fallbackChannel: deps.channel,
    body: { type: 'text', text: body, blocks: [] },
  });
  deps.kick?.();
}

async function budgetSpent(
  deps: AgentDeps,
  incidentId: number,
  turns: number,
  tokens: number,
): Promise<boolean> {
  if (turns < deps.maxTurns && tokens < deps.maxTokens) return false;
  if (await markBudgetSpent(deps.db, incidentId)) {
    await queueThreadMessage(deps.db, {
      incidentId,
      key: agentNoticeKey(incidentId, 'budget'),
      fallbackChannel: deps.channel,
      body: {
        type: 'text',
        text: `:hourglass: The agent's budget for this incident is spent: ${turns} of ${deps.maxTurns} turns, ${tokens.toLocaleString('en')} of ${deps.maxTokens.toLocaleString('en')} tokens. It stops here (AGENT_MAX_TURNS, AGENT_MAX_TOKENS).`,
        blocks: [],
      },
    });
    deps.kick?.();
  }
  return true;
}

export async function runAgentTurn(deps: AgentDeps, incidentId: number): Promise<TurnOutcome> {
  const state = await claimTurn(deps.db, incidentId);
  if (!state) return { kind: 'busy' };
  try {
    return await turn(deps, incidentId, state.turns, state.tokens);
  } finally {
    await releaseTurn(deps.db, incidentId);
  }
}

/** The thread's line for the turn that ended at the model's message `messageId`. */
const turnKey = agentTurnKey;

/** The text blocks of a message, as one text. */
const textOf = (content: readonly ContentBlock[]) =>
  content
    .filter((b): b is TextBlock => b.type === 'text')
    .map((b) => b.text)
    .join('\n');

async function turn(
  deps: AgentDeps,
  incidentId: number,
  turns0: number,
  tokens0: number,
): Promise<TurnOutcome> {
  if (await budgetSpent(deps, incidentId, turns0, tokens0)) return { kind: 'budget_spent' };
  const tools = deps.tools ?? AGENT_TOOLS;
  const { now } = deps;
  // Secrets found anywhere in the incident's findings or this turn's tool results are hidden
  // wherever the same value turns up again, named or not.
  const knownSecrets = await incidentSecrets(deps.db, incidentId, deps.evidenceDir);
  const clean = (text: string) => {
    const r = redact(text);
    knownSecrets.add(r.secrets);
    return knownSecrets.scrub(r.text).text;
  };
  const ctx: ToolContext = {
    knownSecrets,
    db: deps.db,
    incidentId,
    evidenceDir: deps.evidenceDir,
    hosts: deps.hosts,
    sqlDatabases: deps.sqlDatabases.map((d) => d.name),
    checkSql: deps.checkSql,
    policy: deps.policy,
    channel: deps.channel,
    now,
    kick: deps.kick,
  };
  const c: Conversation = {
    deps,
    incidentId,
    tools,
    ctx,
    messages: await loadConversation(deps.db, incidentId),
  };
  const cut = await answerCut(c);
  // The model still owes an answer when the last turn stopped before it (a failed call, a
  // restart), unless that turn had ended at a proposal.
  const last = c.messages.at(-1);
  const owed =
    (cut.answered && cut.proposals.length === 0) ||
    (last?.role === 'user' && last.content.some((b) => b.type === 'text'));
  const news = await whatIsNew(deps, incidentId, c.messages.length === 0, clean);
  if (news.blocks.length === 0 && !owed)
    return cut.proposals.length > 0
      ? { kind: 'proposed', calls: 0, proposals: cut.proposals }
      : { kind: 'nothing_new' };
  if (news.blocks.length > 0)
    await deps.db.transaction(async (tx) => {
      c.messages.push(await appendMessage(tx, incidentId, { role: 'user', content: news.blocks }));
      await markTold(tx, news.told);
    });
  return converse(c, turns0, tokens0);
}

/** One turn's conversation: what it runs with, and the messages so far (appended to as it goes). */
interface Conversation {
  deps: AgentDeps;
  incidentId: number;
  tools: readonly AgentTool[];
  ctx: ToolContext;
  messages: StoredMessage[];
}

/**
 * A turn cut short after the model asked for tools (a crash, a restart) and before their
 * results were stored: each is answered once with what happened. A proposal made before the
 * crash is told as made, as the tool would have told it (its creation is audited with the
 * tool_use id), and the turn ends there as it would have; told "interrupted", the model would
 * propose it again. Anything else did not finish: the model may call it again.
 */
async function answerCut(c: Conversation): Promise<{ answered: boolean; proposals: number[] }> {
  const { deps, incidentId, messages } = c;
  const cut = unansweredToolUses(messages);
  const proposals: number[] = [];
  if (cut.length === 0) return { answered: false, proposals };
  const asked = messages.at(-1)!;
  const content: ToolResultBlock[] = [];
  for (const use of cut) {
    const made = c.tools.find((t) => t.name === use.name)?.acts
      ? await proposalOfToolUse(deps.db, incidentId, use.id)
      : undefined;
    if (made) {
      proposals.push(made.id);
      // Its message with the buttons may not have been queued before the crash: without it no
      // approver would ever see the proposal. Queued once (its key), as the tool does.
      await queueProposalMessage(deps.db, made, deps.channel, c.ctx.now());
      content.push(toolResult(use, recordedOutcome(made), c.ctx.knownSecrets));
    } else
      content.push({
        type: 'tool_result',
        tool_use_id: use.id,
        content:
          'Interrupted: the bot restarted before this tool finished. Call it again if you still need it.',
        is_error: true,
      });
  }
  messages.push(await appendMessage(deps.db, incidentId, { role: 'user', content }));
  if (proposals.length > 0)
    await postTurn(deps, incidentId, turnKey(incidentId, asked.id), textOf(asked.content), cut, proposals);
  return { answered: true, proposals };
}

/**
 * Calls the model until it ends its turn, proposes something, or the budget is spent, answering
 * its tool calls in between. Each reply is stored with what it cost in one transaction.
 */
async function converse(c: Conversation, turns0: number, tokens0: number): Promise<TurnOutcome> {
  const { deps, incidentId, messages } = c;
  const system = systemPrompt();
  const specs = c.tools.map(toolSpec);
  const used: ToolUseBlock[] = [];
  /** What the model said along the way, for the thread when its last message says nothing. */
  const said: string[] = [];
  let turns = turns0;
  let tokens = tokens0;
  for (let calls = 0; ; calls++) {
    if (await budgetSpent(deps, incidentId, turns, tokens)) return { kind: 'budget_spent' };
    const reply = await deps.model.createMessage({
      system,
      messages: forModel(messages),
      tools: specs,
      maxTokens: deps.maxOutputTokens ?? 4096,
    });
    const content =
      reply.content.length > 0 ? reply.content : [{ type: 'text' as const, text: '(no answer)' }];
    const stored = await deps.db.transaction(async (tx) => {
      const m = await appendMessage(tx, incidentId, { role: 'assistant', content }, reply.usage);
      ({ turns, tokens } = await spend(tx, incidentId, reply.usage));
      return m;
    });
    messages.push(stored);
    const text = textOf(content);
    const uses = content.filter((b): b is ToolUseBlock => b.type === 'tool_use');
    if (text.trim()) said.push(text.trim());
    const summary = text.trim() || said.join('\n');
    const key = turnKey(incidentId, stored.id);
    if (uses.length === 0) {
      await postTurn(deps, incidentId, key, summary, used, []);
      return { kind: 'ended', calls: calls + 1 };
    }
    used.push(...uses);
    const { results, proposals } = await callTools(c, uses);
    if (proposals.length > 0) {
      // The results and the turn's line in the thread in one transaction: a bot that dies here
      // stored both or neither, and then the next turn answers the tool uses and posts the line
      // (answerCut). Posted once it is committed.
      await deps.db.transaction(async (tx) => {
        messages.push(await appendMessage(tx, incidentId, { role: 'user', content: results }));
        await postTurn({ ...deps, db: tx, kick: undefined }, incidentId, key, summary, used, proposals);
      });
      deps.kick?.();
      return { kind: 'proposed', calls: calls + 1, proposals };
    }
    messages.push(await appendMessage(deps.db, incidentId, { role: 'user', content: results }));
  }
}

async function callTools(
  c: Conversation,
  uses: readonly ToolUseBlock[],
): Promise<{ results: ToolResultBlock[]; proposals: number[] }> {
  const results: ToolResultBlock[] = [];
  const proposals: number[] = [];
  for (const use of uses) {
    const call = await callTool(c.tools, use, c.ctx);
    results.push(call.result);
    if (call.proposal) proposals.push(call.proposal.id);
    c.deps.log.info(
      {
        incident: c.incidentId,
        tool: use.name,
        error: call.result.is_error ?? false,
        proposal: call.proposal?.id,
      },
      'agent tool call',
    );
  }
  return { results, proposals };
}
