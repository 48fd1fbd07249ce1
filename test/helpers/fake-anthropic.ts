/**
 * A fake Anthropic Messages API for tests, in the spirit of the SDK's own tests (they point
 * `baseURL` at a local server that queues replies and records requests) and of fake-slack.ts.
 *
 * It speaks the wire format the real @anthropic-ai/sdk uses: `POST /v1/messages` with JSON,
 * the key in `x-api-key` (or `Authorization: Bearer`, as SDK 1.x sends it) and an
 * `anthropic-version` header; a message answer with `id`, `type: 'message'`,
 * `role`, `model`, content blocks (`text`, `tool_use`), `stop_reason` and `usage` (with
 * `cache_creation_input_tokens` / `cache_read_input_tokens`: a system prompt marked
 * `cache_control` is "written" on its first request and "read" after); errors as
 * `{type:'error', error:{type, message}}` with the statuses the API uses and a `request-id`.
 * Like the real API it refuses a conversation whose tool_use blocks are not answered by
 * tool_result blocks at the start of the next user message, or whose tool_result blocks answer
 * nothing in the message before or answer one tool_use twice, so a broken loop fails loudly.
 *
 * In domain terms a test scripts what the model does next (`reply(toolUse(...))`,
 * `reply(endTurn('...'))`, or a function of the request) and injects faults (`rateLimited`,
 * `overloaded`, `serverError`, and a tool call whose input does not fit the tool's schema).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const FAKE_ANTHROPIC_KEY = 'sk-ant-fake-0123456789abcdefghij';

export interface WireTextBlock {
  type: 'text';
  text: string;
  cache_control?: { type: 'ephemeral' };
}
export interface WireToolUseBlock {
  type: 'tool_use';
  id: string;
  name: string;
  input: unknown;
}
export interface WireToolResultBlock {
  type: 'tool_result';
  tool_use_id: string;
  content: string | WireTextBlock[];
  is_error?: boolean;
}
export type WireBlock = WireTextBlock | WireToolUseBlock | WireToolResultBlock;

export interface WireMessage {
  role: 'user' | 'assistant';
  content: string | WireBlock[];
}

/** A request body as the SDK sent it. */
export interface MessagesRequest {
  model: string;
  max_tokens: number;
  system?: string | WireTextBlock[];
  messages: WireMessage[];
  tools?: Array<{ name: string; description?: string; input_schema: Record<string, unknown> }>;
  [key: string]: unknown;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: MessagesRequest;
  at: number;
  /** The status the fake answered with. */
  status: number;
  /**
   * The fake's own time on this request, in milliseconds: from its arrival to the answer written
   * (the "model's time", which a benchmark subtracts from what the bot took).
   */
  handledMs: number;
  /** Date.now() when the answer was written. */
  answeredAt: number;
}

/** What the model says next: content blocks and why it stopped (ids and usage are filled in). */
export interface ScriptedMessage {
  content: Array<WireTextBlock | (Omit<WireToolUseBlock, 'id'> & { id?: string })>;
  stop_reason: 'end_turn' | 'tool_use' | 'max_tokens' | 'stop_sequence';
}

/** An error answer, as the API sends it. */
export interface Fault {
  status: number;
  type: string;
  message: string;
  headers?: Record<string, string>;
}

export type Scripted = ScriptedMessage | Fault | ((request: MessagesRequest) => ScriptedMessage | Fault);

/** The model calls a tool (with an optional sentence before, as Claude often writes). */
export function toolUse(name: string, input: unknown, text?: string): ScriptedMessage {
  return {
    content: [...(text ? [{ type: 'text' as const, text }] : []), { type: 'tool_use', name, input }],
    stop_reason: 'tool_use',
  };
}

/**
 * A tool call whose input does not fit the tool's schema (a missing field, a wrong type, not
 * even an object): the model got it wrong, which real models sometimes do.
 */
export function malformedToolUse(name: string, input: unknown): ScriptedMessage {
  return { content: [{ type: 'tool_use', name, input }], stop_reason: 'tool_use' };
}

/** The model ends its turn with text. */
export function endTurn(text: string): ScriptedMessage {
  return { content: [{ type: 'text', text }], stop_reason: 'end_turn' };
}

/** 429 rate_limit_error with retry-after (seconds) and retry-after-ms, which the SDK honours. */
export function rateLimited(retryAfterMs = 20): Fault {
  return {
    status: 429,
    type: 'rate_limit_error',
    message: 'Number of request tokens has exceeded your per-minute rate limit',
    headers: {
      'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
      'retry-after-ms': String(retryAfterMs),
    },
  };
}

/** 529 overloaded_error: the API is overloaded (the SDK retries it). */
export function overloaded(): Fault {
  return {
    status: 529,
    type: 'overloaded_error',
    message: 'Overloaded',
    headers: { 'retry-after-ms': '20' },
  };
}

/** 500 api_error: an internal error on the API's side (the SDK retries it). */
export function serverError(): Fault {
  return {
    status: 500,
    type: 'api_error',
    message: 'Internal server error',
    headers: { 'retry-after-ms': '20' },
  };
}

export interface FakeAnthropic {
  /** For the SDK's `baseURL` (and ANTHROPIC_BASE_URL). */
  baseURL: string;
  apiKey: string;
  /** Every request received, in order, faults included. */
  requests: RecordedRequest[];
  /** Requests answered with a message (not a fault). */
  answered(): RecordedRequest[];
  /** Queues what the model says or does next, in order. */
  reply(...next: Scripted[]): void;
  /** Scripted replies not used yet. */
  pending(): number;
  /** Forgets the requests and the replies not used yet (between tests). */
  reset(): void;
  close(): Promise<void>;
}

const isFault = (s: ScriptedMessage | Fault): s is Fault => 'status' in s;

/** Roughly four characters a token, as a stand-in for the tokenizer. */
const tokens = (value: unknown) => Math.max(1, Math.ceil(JSON.stringify(value ?? '').length / 4));

/** What the real API checks that a loop can get wrong, as a 400 invalid_request_error message. */
function invalidRequest(body: MessagesRequest): string | undefined {
  if (typeof body.model !== 'string' || body.model === '') return 'model: Field required';
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return 'max_tokens: Field required';
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    return 'messages: at least one message is required';
  if (body.messages[0]!.role !== 'user') return 'messages: first message must use the "user" role';
  for (const [i, message] of body.messages.entries()) {
    if (message.role !== 'user' && message.role !== 'assistant')
      return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (
      typeof message.content !== 'string' &&
      (!Array.isArray(message.content) || message.content.length === 0)
    )
      return `messages.${i}: all messages must have non-empty content`;
    if (message.role === 'user' && typeof message.content !== 'string') {
      // Like the API: a tool_result answers a tool_use of the message just before, and only once.
      const previous = body.messages[i - 1];
      const asked =
        previous?.role === 'assistant' && typeof previous.content !== 'string'
          ? previous.content.filter((b): b is WireToolUseBlock => b.type === 'tool_use').map((b) => b.id)
          : [];
      const answered = new Set<string>();
      for (const block of message.content) {
        if (block.type !== 'tool_result') continue;
        if (!asked.includes(block.tool_use_id))
          return `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${block.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
        if (answered.has(block.tool_use_id))
          return `messages.${i}.content: \`tool_result\` block(s) provided when previous message does not have a matching \`tool_use\` block: ${block.tool_use_id} is answered twice`;
        answered.add(block.tool_use_id);
      }
    }
    if (message.role !== 'assistant' || typeof message.content === 'string') continue;
    const uses = message.content.filter((b): b is WireToolUseBlock => b.type === 'tool_use');
    if (uses.length === 0) continue;
    const next = body.messages[i + 1];
    if (!next) return `messages.${i}: the conversation ends with tool_use blocks and no tool_result`;
    const blocks = typeof next.content === 'string' ? [] : next.content;
    const leading: string[] = [];
    for (const block of blocks) {
      if (block.type !== 'tool_result') break;
      leading.push(block.tool_use_id);
    }
    const missing = uses.filter((u) => !leading.includes(u.id)).map((u) => u.id);
    if (next.role !== 'user' || missing.length > 0)
      return `messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
  }
  for (const tool of body.tools ?? []) {
    if (!/^[a-zA-Z0-9_-]{1,128}$/.test(tool.name)) return `tools: invalid tool name ${tool.name}`;
    if (tool.input_schema?.type !== 'object')
      return `tools.${tool.name}.input_schema.type: Input should be 'object'`;
  }
  return undefined;
}

/**
 * The key a request presents: `x-api-key`, as the API documents it, or `Authorization: Bearer`,
 * which is how @anthropic-ai/sdk 1.x sends an API key.
 */
export function credential(req: {
  headers: Record<string, string | string[] | undefined>;
}): string | undefined {
  const key = req.headers['x-api-key'];
  if (typeof key === 'string') return key;
  const auth = req.headers.authorization;
  return typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
}

export async function startFakeAnthropic(options: { apiKey?: string } = {}): Promise<FakeAnthropic> {
  const apiKey = options.apiKey ?? FAKE_ANTHROPIC_KEY;
  const requests: RecordedRequest[] = [];
  const script: Scripted[] = [];
  const cachedPrefixes = new Set<string>();
  let counter = 0;

  const send = (res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}) => {
    res.writeHead(status, {
      'content-type': 'application/json',
      'request-id': `req_fake_${randomUUID().replaceAll('-', '')}`,
      ...headers,
    });
    res.end(JSON.stringify(body));
    return status;
  };
  const error = (res: ServerResponse, fault: Fault) =>
    send(
      res,
      fault.status,
      { type: 'error', error: { type: fault.type, message: fault.message } },
      fault.headers,
    );

  const answer = (req: IncomingMessage, res: ServerResponse, raw: string): number => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'POST' || path !== '/v1/messages')
      return error(res, { status: 404, type: 'not_found_error', message: `${req.method} ${path} not found` });
    if (credential(req) !== apiKey)
      return error(res, { status: 401, type: 'authentication_error', message: 'invalid x-api-key' });
    if (!req.headers['anthropic-version'])
      return error(res, {
        status: 400,
        type: 'invalid_request_error',
        message: 'anthropic-version: header is required',
      });
    let body: MessagesRequest;
    try {
      body = JSON.parse(raw) as MessagesRequest;
    } catch {
      return error(res, { status: 400, type: 'invalid_request_error', message: 'the body is not JSON' });
    }
    const invalid = invalidRequest(body);
    if (invalid) return error(res, { status: 400, type: 'invalid_request_error', message: invalid });
    const next = script.shift();
    if (!next)
      return error(res, {
        status: 500,
        type: 'api_error',
        message: 'fake Anthropic: no scripted reply left for this request',
        headers: { 'x-should-retry': 'false' },
      });
    const scripted = typeof next === 'function' ? next(body) : next;
    if (isFault(scripted)) return error(res, scripted);
    // Prompt caching: the system prompt up to its cache_control breakpoint is written once, then read.
    const system = Array.isArray(body.system) ? body.system : [];
    const breakpoint = system.findLastIndex((b) => b.cache_control?.type === 'ephemeral');
    const prefix = breakpoint >= 0 ? JSON.stringify([body.tools ?? [], system.slice(0, breakpoint + 1)]) : '';
    const prefixTokens = prefix ? tokens(prefix) : 0;
    const cacheRead = prefix && cachedPrefixes.has(prefix) ? prefixTokens : 0;
    const cacheWrite = prefix && !cachedPrefixes.has(prefix) ? prefixTokens : 0;
    if (prefix) cachedPrefixes.add(prefix);
    counter++;
    const content = scripted.content.map((block, i) =>
      block.type === 'tool_use'
        ? {
            type: 'tool_use',
            id: block.id ?? `toolu_fake_${counter}_${i}`,
            name: block.name,
            input: block.input,
          }
        : { type: 'text', text: block.text },
    );
    return send(res, 200, {
      id: `msg_fake_${counter}`,
      type: 'message',
      role: 'assistant',
      model: body.model,
      content,
      stop_reason: scripted.stop_reason,
      stop_sequence: null,
      usage: {
        input_tokens: Math.max(1, tokens(body.messages) + tokens(body.system) - cacheRead - cacheWrite),
        output_tokens: tokens(content),
        cache_creation_input_tokens: cacheWrite,
        cache_read_input_tokens: cacheRead,
        service_tier: 'standard',
      },
    });
  };

  const server = createServer((req, res) => {
    const arrived = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: { ...req.headers },
        body: (() => {
          try {
            return JSON.parse(raw) as MessagesRequest;
          } catch {
            return { model: '', max_tokens: 0, messages: [] };
          }
        })(),
        at: Date.now(),
        status: 0,
        handledMs: 0,
        answeredAt: 0,
      };
      requests.push(recorded);
      recorded.status = answer(req, res, raw);
      recorded.handledMs = performance.now() - arrived;
      recorded.answeredAt = Date.now();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    answered: () => requests.filter((r) => r.status === 200),
    reply: (...next) => script.push(...next),
    pending: () => script.length,
    reset: () => {
      requests.length = 0;
      script.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
