import type { ContentBlock, ConversationMessage, Usage } from '../agent/client.ts';
import type { Db } from './db.ts';
import { runMessageKey } from './message-keys.ts';

/**
 * The agent's conversation and budget per incident (agent_messages, agent_state), so a restarted
 * bot, or another bot process, continues where it was, and what the model has been told
 * (agent_told_at on findings, runs and proposals). Messages are appended, never edited.
 */

export interface AgentState {
  turns: number;
  tokens: number;
  budgetSpentAt: Date | null;
}

interface StateRow {
  turns: number;
  tokens: string | number;
  budget_spent_at: Date | string | null;
}

const toState = (r: StateRow): AgentState => ({
  turns: Number(r.turns),
  tokens: Number(r.tokens),
  budgetSpentAt: r.budget_spent_at === null ? null : new Date(r.budget_spent_at),
});

/**
 * Takes the incident's lease for one turn (one turn at a time per incident, across processes);
 * undefined when another turn holds it. A lease a crashed process left runs out by itself.
 */
export async function claimTurn(
  db: Db,
  incidentId: number,
  leaseSeconds = 900,
): Promise<AgentState | undefined> {
  await db.executeSql(
    'INSERT INTO agent_state (incident_id) VALUES ($1) ON CONFLICT (incident_id) DO NOTHING',
    [incidentId],
  );
  const { rows } = await db.executeSql<StateRow>(
    `UPDATE agent_state SET lease_until = now() + make_interval(secs => $2), updated_at = now()
     WHERE incident_id = $1 AND (lease_until IS NULL OR lease_until < now()) RETURNING *`,
    [incidentId, leaseSeconds],
  );
  return rows[0] ? toState(rows[0]) : undefined;
}

export async function releaseTurn(db: Db, incidentId: number): Promise<void> {
  await db.executeSql(
    'UPDATE agent_state SET lease_until = NULL, updated_at = now() WHERE incident_id = $1',
    [incidentId],
  );
}

export interface StoredMessage extends ConversationMessage {
  id: number;
}

export async function loadConversation(db: Db, incidentId: number): Promise<StoredMessage[]> {
  // content is jsonb: both drivers hand it back parsed.
  const { rows } = await db.executeSql<{ id: string; role: 'user' | 'assistant'; content: ContentBlock[] }>(
    'SELECT id, role, content FROM agent_messages WHERE incident_id = $1 ORDER BY id',
    [incidentId],
  );
  return rows.map((r) => ({ id: Number(r.id), role: r.role, content: r.content }));
}

export async function appendMessage(
  db: Db,
  incidentId: number,
  message: ConversationMessage,
  usage?: Usage,
): Promise<StoredMessage> {
  const { rows } = await db.executeSql<{ id: string }>(
    'INSERT INTO agent_messages (incident_id, role, content, usage) VALUES ($1, $2, $3, $4) RETURNING id',
    [incidentId, message.role, JSON.stringify(message.content), usage ? JSON.stringify(usage) : null],
  );
  return { ...message, id: Number(rows[0]!.id) };
}

/** Counts one model call and its tokens (input, output and cache, summed). */
export async function spend(db: Db, incidentId: number, usage: Usage): Promise<AgentState> {
  const tokens =
    usage.input_tokens +
    usage.output_tokens +
    usage.cache_creation_input_tokens +
    usage.cache_read_input_tokens;
  const { rows } = await db.executeSql<StateRow>(
    `UPDATE agent_state SET turns = turns + 1, tokens = tokens + $2, updated_at = now() WHERE incident_id = $1 RETURNING *`,
    [incidentId, tokens],
  );
  return toState(rows[0]!);
}

/** Marks the budget spent; true only the first time (so the thread is told once). */
export async function markBudgetSpent(db: Db, incidentId: number): Promise<boolean> {
  const { rows } = await db.executeSql(
    `UPDATE agent_state SET budget_spent_at = now() WHERE incident_id = $1 AND budget_spent_at IS NULL RETURNING 1`,
    [incidentId],
  );
  return rows.length > 0;
}

/**
 * Proposals of the agent's own that closed without running (rejected, or expired before an
 * approval or before their run started) and that the model has not been told of: of one
 * incident for its turn, or of every incident whose agent can still take a turn (the sweeper
 * wakes those again when their wake was lost).
 */
export async function closedUntold(
  db: Db,
  of: { incidentId: number } | { limit: number },
): Promise<Array<{ id: number; incidentId: number }>> {
  const { rows } =
    'incidentId' in of
      ? await db.executeSql<{ id: string; incident_id: string }>(
          `SELECT id, incident_id FROM proposals
           WHERE incident_id = $1 AND proposed_by = 'agent' AND state IN ('rejected', 'expired')
             AND agent_told_at IS NULL ORDER BY id`,
          [of.incidentId],
        )
      : await db.executeSql<{ id: string; incident_id: string }>(
          `SELECT p.id, p.incident_id FROM proposals p
           WHERE p.proposed_by = 'agent' AND p.state IN ('rejected', 'expired') AND p.agent_told_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM agent_state s
                             WHERE s.incident_id = p.incident_id AND s.budget_spent_at IS NOT NULL)
           ORDER BY p.id LIMIT $1`,
          [of.limit],
        );
  return rows.map((r) => ({ id: Number(r.id), incidentId: Number(r.incident_id) }));
}

/** A finished run of the incident the model has not been told of, with the reply the thread got. */
export interface UntoldRun {
  id: number;
  proposalId: number;
  kind: string;
  target: string;
  state: string;
  exitCode: number | null;
  outputBytes: number;
  error: string | null;
  result: object;
  /** The text of the run's reply (`run:<id>:result`) as queued for Slack (mrkdwn); none when none was. */
  postedText: string | undefined;
}

interface UntoldRunRow {
  id: string;
  proposal_id: string;
  kind: string;
  target: string;
  state: string;
  exit_code: number | null;
  output_bytes: string | null;
  error: string | null;
  result: object | null;
}

/** The incident's finished runs the model has not been told of, oldest first, at most `limit`. */
export async function untoldRuns(db: Db, incidentId: number, limit = 20): Promise<UntoldRun[]> {
  const { rows } = await db.executeSql<UntoldRunRow>(
    `SELECT r.id, r.proposal_id, p.kind, p.target, r.state, r.exit_code, r.output_bytes, r.error, r.result
     FROM runs r JOIN proposals p ON p.id = r.proposal_id
     WHERE p.incident_id = $1 AND r.agent_told_at IS NULL AND r.finished_at IS NOT NULL
     ORDER BY r.id LIMIT $2`,
    [incidentId, limit],
  );
  if (rows.length === 0) return [];
  const keys = rows.map((r) => runMessageKey(Number(r.id), 'result'));
  const posted = await db.executeSql<{ dedup_key: string; body: { text?: string } }>(
    'SELECT dedup_key, body FROM thread_messages WHERE dedup_key = ANY($1::text[])',
    [keys],
  );
  const text = new Map(posted.rows.map((m) => [m.dedup_key, m.body.text]));
  return rows.map((r, i) => ({
    id: Number(r.id),
    proposalId: Number(r.proposal_id),
    kind: r.kind,
    target: r.target,
    state: r.state,
    exitCode: r.exit_code,
    outputBytes: Number(r.output_bytes ?? 0),
    error: r.error,
    result: r.result ?? {},
    postedText: text.get(keys[i]!),
  }));
}

/** What one message told the model: findings, finished runs, proposals that closed. */
export interface Told {
  findings: readonly number[];
  runs: readonly number[];
  closedProposals: readonly number[];
}

/** Marks what the model was told, once (told_at is kept from the first time). */
const markToldSql = (table: 'findings' | 'runs' | 'proposals') =>
  `UPDATE ${table} SET agent_told_at = now() WHERE id = ANY($1::bigint[]) AND agent_told_at IS NULL`;

/**
 * Records what the model was told, in the transaction that stores the message that told it, so
 * each thing is told once however often the agent is woken.
 */
export async function markTold(db: Db, told: Told): Promise<void> {
  const mark = async (table: 'findings' | 'runs' | 'proposals', ids: readonly number[]) => {
    if (ids.length > 0) await db.executeSql(markToldSql(table), [ids]);
  };
  await mark('findings', told.findings);
  await mark('runs', told.runs);
  await mark('proposals', told.closedProposals);
}
