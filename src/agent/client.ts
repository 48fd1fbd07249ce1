import Anthropic from '@anthropic-ai/sdk';
import type { Logger } from '../log.ts';

/**
 * The model, behind a port of one method. Only this file imports the Anthropic SDK: the loop, the
 * tools and the tests speak the small wire types below (the Messages API's own shapes), and a
 * test points the real SDK at the fake server with `baseURL`. The SDK retries 408/409/429/5xx
 * (529 overloaded included) itself, honouring retry-after.
 */

export interface TextBlock {
  type: 'text';
  text: string;
}
export interface ToolUseBlock {
  type: 'tool_use';
  id: string;
  name: string;
  input: unknown;
}
export interface ToolResultBlock {
  type: 'tool_result';
  tool_use_id: string;
  content: string;
  is_error?: boolean;
}
export type ContentBlock = TextBlock | ToolUseBlock | ToolResultBlock;

export interface ConversationMessage {
  role: 'user' | 'assistant';
  content: ContentBlock[];
}

/** A system prompt block; `cache_control` marks the end of the cached prefix (prompt caching). */
export interface SystemBlock {
  type: 'text';
  text: string;
  cache_control?: { type: 'ephemeral' };
}

/** A tool as the API takes it: name, description, JSON Schema of its input. */
export interface ToolSpec {
  name: string;
  description: string;
  input_schema: { type: 'object'; [key: string]: unknown };
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export interface ModelReply {
  id: string;
  /** Text and tool_use blocks (other kinds are not asked for, and dropped). */
  content: Array<TextBlock | ToolUseBlock>;
  stop_reason: string | null;
  usage: Usage;
}

export interface ModelRequest {
  system: SystemBlock[];
  messages: ConversationMessage[];
  tools: ToolSpec[];
  maxTokens: number;
}

/** The port the agent loop uses. */
export interface ModelClient {
  readonly model: string;
  createMessage(request: ModelRequest): Promise<ModelReply>;
}

export interface ModelClientOptions {
  /** ANTHROPIC_API_KEY. */
  apiKey: string;
  /** ANTHROPIC_BASE_URL. Default https://api.anthropic.com. */
  baseURL?: string | undefined;
  /** ANTHROPIC_MODEL. Default claude-sonnet-4-5. */
  model?: string | undefined;
  /** Retries of 408/409/429/5xx/529 with backoff (retry-after honoured). Default 4. */
  maxRetries?: number;
  /** Time for one request, in milliseconds. Default 120000. */
  timeoutMs?: number;
  log?: Logger;
}

export const DEFAULT_MODEL = 'claude-sonnet-4-5';

/** The SDK's logger interface over pino; the SDK masks x-api-key and authorization itself. */
function sdkLogger(log: Logger) {
  const at =
    (level: 'error' | 'warn' | 'info' | 'debug') =>
    (message: string, ...rest: unknown[]) =>
      log[level]({ anthropic: rest }, message);
  return { error: at('error'), warn: at('warn'), info: at('debug'), debug: at('debug') };
}

/** The SDK client as the agent configures it (its URL, retries, deadline, logger); doctor uses it too. */
export function anthropicSdk(options: Omit<ModelClientOptions, 'model'>): Anthropic {
  return new Anthropic({
    apiKey: options.apiKey,
    baseURL: options.baseURL ?? 'https://api.anthropic.com',
    maxRetries: options.maxRetries ?? 4,
    timeout: options.timeoutMs ?? 120_000,
    ...(options.log ? { logger: sdkLogger(options.log), logLevel: 'warn' as const } : {}),
  });
}

export function createModelClient(options: ModelClientOptions): ModelClient {
  const model = options.model ?? DEFAULT_MODEL;
  const sdk = anthropicSdk(options);
  return {
    model,
    async createMessage(request) {
      const reply = await sdk.messages.create({
        model,
        max_tokens: request.maxTokens,
        system: request.system,
        messages: request.messages as Anthropic.MessageParam[],
        tools: request.tools as Anthropic.Tool[],
      });
      return {
        id: reply.id,
        content: reply.content.flatMap(
          (block): Array<TextBlock | ToolUseBlock> =>
            block.type === 'text'
              ? [{ type: 'text', text: block.text }]
              : block.type === 'tool_use'
                ? [{ type: 'tool_use', id: block.id, name: block.name, input: block.input }]
                : [],
        ),
        stop_reason: reply.stop_reason,
        usage: {
          input_tokens: reply.usage.input_tokens,
          output_tokens: reply.usage.output_tokens,
          cache_creation_input_tokens: reply.usage.cache_creation_input_tokens ?? 0,
          cache_read_input_tokens: reply.usage.cache_read_input_tokens ?? 0,
        },
      };
    },
  };
}

/** Whether an error from createMessage is the API's (status known), for the thread's wording. */
export function apiErrorStatus(error: unknown): number | undefined {
  return error instanceof Anthropic.APIError ? error.status : undefined;
}
