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
import type { Db } from '../store/db.ts';
import { queueThreadMessage } from '../store/records.ts';
import type { ModelClient, TextBlock, ToolResultBlock, ToolUseBlock } from './client.ts';
import {
  appendMessage,
  claimTurn,
  closedUntold,
  forModel,
  loadConversation,
  markBudgetSpent,
  markTold,
  releaseTurn,
  type StoredMessage,
  spend,
  type Told,
  unansweredToolUses,
} from './conversation.ts';
import { evidenceBlock, systemPrompt } from './prompt.ts';
import { AGENT_TOOLS } from './tools/index.ts';
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
    key: `agent:${incidentId}:off`,
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
  const blocks: TextBlock[] = [];
  if (first) {
    const incident = await getIncident(deps.db, incidentId);
    if (incident) {
      // The host and the problem are an alert's labels, written by whoever can send alerts: data.
      // A host named in the hosts file (letters, digits, ".", "_", "-") may also be said plainly.
      const listed = deps.hosts.includes(incident.host)
        ? ` Its host, ${incident.host}, is in the hosts file.`
        : '';
      blocks.push({
        type: 'text',
        text: `Incident #${incident.id}, ${incident.status}, severity ${incident.severity}, opened ${incident.openedAt.toISOString()}.${listed} Its host, problem and title, as the alert gave them:\n${evidenceBlock('incident host, problem and title', clean(`host: ${incident.host}\nproblem: ${incident.problem}\ntitle: ${incident.title}`))}\nHosts you may propose scripts on: ${deps.hosts.join(', ') || 'none'}. Databases you may propose SQL on: ${deps.sqlDatabases.map((d) => d.name).join(', ') || 'none'}.`,
      });
    }
  }
  const findings = await deps.db.executeSql<{
    id: string;
    kind: string;
    severity: string;
    title: string;
    body: unknown;
  }>(
    `SELECT id, kind, severity, title, body FROM findings
     WHERE incident_id = $1 AND agent_told_at IS NULL ORDER BY id LIMIT 200`,
    [incidentId],
  );
  if (findings.rows.length > 0) {
    const lines = findings.rows.map((r) => {
      const body = (typeof r.body === 'string' ? JSON.parse(r.body) : r.body) as { detail?: string };
      return `#${r.id} [${r.severity}] (${r.kind}) ${r.title}${body.detail ? `\n  ${body.detail.slice(0, 1500).replaceAll('\n', '\n  ')}` : ''}`;
    });
    blocks.push({
      type: 'text',
      text: `${plural(findings.rows.length, 'new finding')} since your last turn (list_findings shows all, with the correlations):\n${evidenceBlock('findings', clean(lines.join('\n')))}`,
    });
  }
  const runs = await deps.db.executeSql<{
    id: string;
    proposal_id: string;
    kind: string;
    target: string;
    state: string;
    exit_code: number | null;
    output_bytes: string | null;
    error: string | null;
    result: unknown;
    posted: unknown;
  }>(
    `SELECT r.id, r.proposal_id, p.kind, p.target, r.state, r.exit_code, r.output_bytes, r.error, r.result,
            (SELECT m.body FROM thread_messages m WHERE m.dedup_key = 'run:' || r.id || ':result') AS posted
     FROM runs r JOIN proposals p ON p.id = r.proposal_id
     WHERE p.incident_id = $1 AND r.agent_told_at IS NULL AND r.finished_at IS NOT NULL
     ORDER BY r.id LIMIT 20`,
    [incidentId],
  );
  for (const r of runs.rows) {
    const posted = (typeof r.posted === 'string' ? JSON.parse(r.posted) : r.posted) as {
      text?: string;
    } | null;
    const result = typeof r.result === 'string' ? r.result : JSON.stringify(r.result ?? {});
    // What the thread showed, as text again (it was escaped for Slack's mrkdwn).
    const output = [
      unescapeMrkdwn(posted?.text ?? ''),
      `result: ${result}`,
      r.error ? `error: ${r.error}` : '',
    ]
      .filter(Boolean)
      .join('\n')
      .slice(0, 20_000);
    blocks.push({
      type: 'text',
      text: `Proposal #${r.proposal_id} (${r.kind} on ${r.target}) ran: ${r.state}, exit code ${r.exit_code ?? 'none'}, ${r.output_bytes ?? 0} bytes of output.\n${evidenceBlock(`run ${r.id} of proposal ${r.proposal_id}`, clean(output))}`,
    });
  }
  const closed: number[] = [];
  for (const { id } of await closedUntold(deps.db, { incidentId })) {
    const proposal = await getProposal(deps.db, id);
    if (!proposal) continue;
    closed.push(id);
    blocks.push({ type: 'text', text: closedText(proposal, await listApprovals(deps.db, id), clean) });
  }
  return {
    blocks,
    told: {
      findings: findings.rows.map((r) => Number(r.id)),
      runs: runs.rows.map((r) => Number(r.id)),
      closedProposals: closed,
    },
  };
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
  const { rows } = await db.executeSql<{ title: string; body: unknown }>(
    'SELECT title, body FROM findings WHERE incident_id = $1 ORDER BY id LIMIT 5000',
    [incidentId],
  );
  for (const row of rows)
    known.add(
      redact(`${row.title}\n${typeof row.body === 'string' ? row.body : JSON.stringify(row.body)}`).secrets,
    );
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
      key: `agent:${incidentId}:budget`,
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
  const messages: StoredMessage[] = await loadConversation(deps.db, incidentId);
  // A turn cut short after the model asked for tools (a crash, a restart) and before their
  // results were stored: each is answered once with what happened. A proposal made before the
  // crash is told as made, as the tool would have told it (its creation is audited with the
  // tool_use id), and the turn ends there as it would have; told "interrupted", the model would
  // propose it again. Anything else did not finish: the model may call it again.
  const cut = unansweredToolUses(messages);
  const cutProposals: number[] = [];
  if (cut.length > 0) {
    const asked = messages.at(-1)!;
    const content: ToolResultBlock[] = [];
    for (const use of cut) {
      const made = tools.find((t) => t.name === use.name)?.acts
        ? await proposalOfToolUse(deps.db, incidentId, use.id)
        : undefined;
      if (made) {
        cutProposals.push(made.id);
        // Its message with the buttons may not have been queued before the crash: without it no
        // approver would ever see the proposal. Queued once (its key), as the tool does.
        await queueProposalMessage(deps.db, made, deps.channel, now());
        content.push(toolResult(use, recordedOutcome(made), knownSecrets));
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
    if (cutProposals.length > 0) {
      const text = asked.content
        .filter((b): b is TextBlock => b.type === 'text')
        .map((b) => b.text)
        .join('\n');
      await postTurn(deps, incidentId, `agent:${incidentId}:turn:${asked.id}`, text, cut, cutProposals);
    }
  }
  // The model still owes an answer when the last turn stopped before it (a failed call, a
  // restart), unless that turn had ended at a proposal.
  const last = messages.at(-1);
  const owed =
    (cut.length > 0 && cutProposals.length === 0) ||
    (last?.role === 'user' && last.content.some((b) => b.type === 'text'));
  const news = await whatIsNew(deps, incidentId, messages.length === 0, clean);
  if (news.blocks.length === 0 && !owed)
    return cutProposals.length > 0
      ? { kind: 'proposed', calls: 0, proposals: cutProposals }
      : { kind: 'nothing_new' };
  if (news.blocks.length > 0)
    await deps.db.transaction(async (tx) => {
      messages.push(await appendMessage(tx, incidentId, { role: 'user', content: news.blocks }));
      await markTold(tx, news.told);
    });

  const system = systemPrompt();
  const specs = tools.map(toolSpec);
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
      const spent = await spend(tx, incidentId, reply.usage);
      turns = spent.turns;
      tokens = spent.tokens;
      return m;
    });
    messages.push(stored);
    const text = content
      .filter((b): b is TextBlock => b.type === 'text')
      .map((b) => b.text)
      .join('\n');
    const uses = content.filter((b): b is ToolUseBlock => b.type === 'tool_use');
    if (text.trim()) said.push(text.trim());
    const summary = text.trim() || said.join('\n');
    if (uses.length === 0) {
      await postTurn(deps, incidentId, `agent:${incidentId}:turn:${stored.id}`, summary, used, []);
      return { kind: 'ended', calls: calls + 1 };
    }
    used.push(...uses);
    const results: ToolResultBlock[] = [];
    const proposals: number[] = [];
    for (const use of uses) {
      const call = await callTool(tools, use, ctx);
      results.push(call.result);
      if (call.proposal) proposals.push(call.proposal.id);
      deps.log.info(
        {
          incident: incidentId,
          tool: use.name,
          error: call.result.is_error ?? false,
          proposal: call.proposal?.id,
        },
        'agent tool call',
      );
    }
    if (proposals.length > 0) {
      // The results and the turn's line in the thread in one transaction: a bot that dies here
      // stored both or neither, and then the next turn answers the tool uses and posts the line
      // (see the top of this function). Posted once it is committed.
      await deps.db.transaction(async (tx) => {
        messages.push(await appendMessage(tx, incidentId, { role: 'user', content: results }));
        await postTurn(
          { ...deps, db: tx, kick: undefined },
          incidentId,
          `agent:${incidentId}:turn:${stored.id}`,
          summary,
          used,
          proposals,
        );
      });
      deps.kick?.();
      return { kind: 'proposed', calls: calls + 1, proposals };
    }
    messages.push(await appendMessage(deps.db, incidentId, { role: 'user', content: results }));
  }
}
