import { z } from 'zod';
import { type KnownSecrets, redact } from '../../analyze/redact.ts';
import type { Policy } from '../../approvals/policy.ts';
import type { Proposal } from '../../approvals/service.ts';
import type { SqlVerdict } from '../../runners/sql-check.ts';
import type { Db } from '../../store/db.ts';
import type { ToolResultBlock, ToolSpec, ToolUseBlock } from '../client.ts';
import { evidenceBlock } from '../prompt.ts';

/**
 * A tool the agent may call, as the Anthropic SDK's tool helpers shape one: a zod schema of its
 * input, validated before `run`, and the JSON Schema the API is given (z.toJSONSchema). Read-only
 * tools (`acts: false`) run at once; acting tools only create a proposal, which a human approves
 * or not. Whatever happens, the model gets a tool_result: an invalid input, an unknown tool or a
 * thrown error come back as `is_error` content, and the loop goes on.
 */

/** Checks a SQL text against the named database's catalog; `ok` when it cannot reach the database. */
export type CheckSqlOnDatabase = (database: string, text: string) => Promise<SqlVerdict>;

export interface ToolContext {
  db: Db;
  incidentId: number;
  /** Pulled evidence is kept under <evidenceDir>/incident-<id>/. */
  evidenceDir: string;
  /** Host names from the hosts file (where a script may run). */
  hosts: readonly string[];
  /** Database names from the configuration (where SQL may run). */
  sqlDatabases: readonly string[];
  /**
   * The second half of the SQL gate, asked of the target database before a proposal exists:
   * what the statement's names resolve to there. Unset (tests, no database), the text check
   * alone decides here; the runner asks the server again before anything runs.
   */
  checkSql?: CheckSqlOnDatabase | undefined;
  policy: Policy;
  channel: string;
  now: () => Date;
  /** Asks the Slack outbox to post what was queued. */
  kick?: (() => void) | undefined;
  /**
   * Secrets already found in this incident (its findings, earlier tool results): a bare copy of
   * one is hidden too, and what redact() finds in each result is added.
   */
  knownSecrets?: KnownSecrets;
  /**
   * The tool_use block being answered (set by callTool): an acting tool records it with the
   * proposal it makes, so a turn cut short before the tool_result was stored can tell the model
   * the proposal exists instead of asking it to propose again.
   */
  toolUseId?: string;
}

/** Redacts a tool's text, remembering what it hides and hiding what was hidden before. */
export function redactForModel(text: string, known: KnownSecrets | undefined): string {
  const r = redact(text);
  if (!known) return r.text;
  known.add(r.secrets);
  return known.scrub(r.text).text;
}

export interface ToolOutcome {
  /** Where the text came from, for the evidence delimiters. */
  source: string;
  text: string;
  isError?: boolean;
  /** Set by acting tools: the proposal they recorded. */
  proposal?: Proposal;
}

export interface AgentTool {
  name: string;
  description: string;
  /** Whether the tool creates a proposal (the turn ends after it) rather than reading. */
  acts: boolean;
  input: z.ZodType;
  run(input: unknown, ctx: ToolContext): Promise<ToolOutcome>;
}

export function defineTool<S extends z.ZodType>(tool: {
  name: string;
  description: string;
  acts: boolean;
  input: S;
  run(input: z.output<S>, ctx: ToolContext): Promise<ToolOutcome>;
}): AgentTool {
  return { ...tool, run: (input, ctx) => tool.run(input as z.output<S>, ctx) };
}

/** The tool as the Messages API takes it. */
export function toolSpec(tool: AgentTool): ToolSpec {
  const { $schema: _drop, ...schema } = z.toJSONSchema(tool.input, { io: 'input' }) as Record<
    string,
    unknown
  >;
  return {
    name: tool.name,
    description: tool.description,
    input_schema: { ...schema, type: 'object' },
  };
}

/** A refusal the model should read and act on (not a crash): becomes an is_error result. */
export class ToolRefusal extends Error {
  override name = 'ToolRefusal';
}

const MAX_RESULT_CHARS = 30_000;

export interface ToolCall {
  result: ToolResultBlock;
  proposal?: Proposal;
}

/** Runs one tool_use block: validates, runs, redacts and delimits; never throws. */
export async function callTool(
  tools: readonly AgentTool[],
  use: ToolUseBlock,
  ctx: ToolContext,
): Promise<ToolCall> {
  const failed = (text: string): ToolCall => ({
    result: {
      type: 'tool_result',
      tool_use_id: use.id,
      content: evidenceBlock(`${use.name} error`, redactForModel(text, ctx.knownSecrets)),
      is_error: true,
    },
  });
  const tool = tools.find((t) => t.name === use.name);
  if (!tool)
    return failed(`There is no tool named ${use.name}. Tools: ${tools.map((t) => t.name).join(', ')}.`);
  const parsed = tool.input.safeParse(use.input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`);
    return failed(`The input does not fit ${tool.name}'s schema, so it did not run:\n${issues.join('\n')}`);
  }
  let outcome: ToolOutcome;
  try {
    outcome = await tool.run(parsed.data, { ...ctx, toolUseId: use.id });
  } catch (error) {
    const message =
      error instanceof ToolRefusal ? error.message : `${tool.name} failed: ${(error as Error).message}`;
    return failed(message);
  }
  return {
    result: toolResult(use, outcome, ctx.knownSecrets),
    ...(outcome.proposal ? { proposal: outcome.proposal } : {}),
  };
}

/** A tool's outcome as the model gets it: redacted, cut to size, inside evidence delimiters. */
export function toolResult(
  use: ToolUseBlock,
  outcome: ToolOutcome,
  known: KnownSecrets | undefined,
): ToolResultBlock {
  let text = redactForModel(outcome.text, known);
  if (text.length > MAX_RESULT_CHARS)
    text = `${text.slice(0, MAX_RESULT_CHARS)}\n… (cut at ${MAX_RESULT_CHARS} characters)`;
  return {
    type: 'tool_result',
    tool_use_id: use.id,
    content: evidenceBlock(outcome.source, text),
    ...(outcome.isError ? { is_error: true } : {}),
  };
}
