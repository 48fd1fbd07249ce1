/**
 * A fake Slack for tests: the Web API, the file upload URL, response_url and Socket Mode on one
 * local port, plus signed HTTP deliveries and builders for the payloads Slack sends an app.
 *
 * It speaks the wire formats the real clients use (read from @slack/web-api 8, @slack/socket-mode 3
 * and @slack/bolt 5), so the bot under test runs its real WebClient / SocketModeClient / Bolt
 * receiver against it and a test asserts on what Slack would have seen: messages per channel with
 * their edits, files with their bytes and destination, acks with their payloads. Faults are injected
 * per method (rate limits, `ok:false` errors, HTTP 5xx), in the spirit of the Anthropic SDK's fakes.
 *
 * Dependency-free: node:http serves everything, and the Socket Mode side is a small RFC 6455 server
 * (handshake, masked client frames, ping/pong, close handshake) rather than the `ws` package,
 * which is not installed here.
 */

import { createHash, createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { blockKitProblems } from './block-kit.ts';

/** The ids the fake and the payload builders share, so an event "from Slack" names the same workspace. */
export const FAKE_IDS = {
  team: 'T0FAKE0001',
  teamDomain: 'nightshift-test',
  app: 'A0FAKEAPP1',
  botUser: 'U0FAKEBOT1',
  bot: 'B0FAKEBOT1',
  botName: 'nightshift',
  user: 'U0FAKEUSR1',
  userName: 'oncall',
  channel: 'C0FAKECHN1',
  channelName: 'incidents',
  /** The legacy verification token Slack still puts in payloads (Bolt ignores it). */
  verificationToken: 'fake-verification-token',
} as const;

export const DEFAULT_BOT_TOKEN = 'xoxb-test-bot-token';
export const DEFAULT_APP_TOKEN = 'xapp-1-test';
/** The scopes the bot token is granted unless `scopes` says otherwise: those manifest.yml asks for. */
export const DEFAULT_BOT_SCOPES: readonly string[] = [
  'app_mentions:read',
  'channels:history',
  'channels:read',
  'chat:write',
  'commands',
  'files:write',
  'groups:history',
  'groups:read',
  'reactions:read',
  'usergroups:read',
  'users:read',
];
/** Slack's content type for slash commands and interactivity; Bolt matches it exactly, without charset. */
export const FORM_TYPE = 'application/x-www-form-urlencoded';

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/**
 * A fault for the next call(s) to one method:
 * - `{ status: 429, retryAfter }`: HTTP 429 with `Retry-After` (seconds) and `{ok:false,error:'ratelimited'}`,
 *   as Slack rate-limits; the WebClient pauses its queue that long, then retries.
 * - `{ error }`: HTTP 200 `{ok:false, error, ...extra}`, Slack's way of failing a call (never retried).
 * - `{ status }`: any other HTTP status (e.g. 500) with a plain-text body.
 * - `{ hang: true }`: the request is read and never answered (the connection stays open until the
 *   client gives up or the fake closes), as a Slack call that hangs.
 * - `{ lostAnswer: true }`: the call is carried out (a message is posted) and then the connection
 *   is cut before the answer: Slack has it, the client never hears.
 */
export type FakeFault =
  | { status: 429; retryAfter: number }
  | { error: string; extra?: Record<string, unknown> }
  | { status: number; body?: string }
  | { hang: true }
  | { lostAnswer: true };

export interface RecordedCall {
  method: string;
  /** The token from `Authorization: Bearer`, else from a `token` argument. */
  token: string | undefined;
  /** The arguments as Slack received them: form fields are strings (objects arrive JSON-encoded). */
  args: Record<string, unknown>;
  contentType: string;
  /** Date.now() when the request arrived. */
  at: number;
  /** The fault injected into this call, if any. */
  fault?: FakeFault;
  /** HTTP status the fake answered with. */
  status: number;
  /** The JSON the fake answered with (absent for a non-JSON fault). */
  response?: Record<string, unknown>;
}

export interface FakeReactionOnMessage {
  name: string;
  users: string[];
}

export interface FakeMessage {
  channel: string;
  ts: string;
  /** A reply's parent ts; as in Slack, a parent gets its own ts here once it has a reply. */
  thread_ts?: string;
  text?: string;
  blocks?: unknown[];
  attachments?: unknown[];
  metadata?: unknown;
  /** The author: the bot user for messages the app posted, whoever for seeded ones. */
  user: string;
  bot_id?: string;
  reply_broadcast?: boolean;
  edited?: { user: string; ts: string };
  /** Earlier versions, oldest first: one entry per chat.update. */
  history: Array<{ text?: string; blocks?: unknown[]; attachments?: unknown[]; at: number }>;
  reactions: FakeReactionOnMessage[];
  /** The decoded arguments of the chat.postMessage that created it (undefined for seeded ones). */
  args?: Record<string, unknown>;
}

export interface FakeEphemeral {
  channel: string;
  user: string;
  ts: string;
  thread_ts?: string;
  text?: string;
  blocks?: unknown[];
}

export interface FakeReaction {
  channel: string;
  timestamp: string;
  name: string;
  user: string;
}

export interface FakeFile {
  id: string;
  filename: string;
  /** The length announced to files.getUploadURLExternal. */
  length: number;
  alt_text?: string;
  snippet_type?: string;
  /** The bytes POSTed to the upload URL (undefined until then). */
  bytes?: Buffer;
  completed: boolean;
  title?: string;
  channel_id?: string;
  thread_ts?: string;
  initial_comment?: string;
  blocks?: unknown[];
  /**
   * Each files.completeUploadExternal that shared it in a channel, as Slack shows it: a message of
   * the bot's (the initial comment, the file attached) at `ts`, in the thread when `thread_ts`.
   * conversations.history and conversations.replies list these messages; `messages` does not.
   */
  shares: Array<{ channel_id: string; thread_ts?: string; ts: string; initial_comment?: string }>;
}

export interface FakeChannel {
  id: string;
  name: string;
  is_private: boolean;
  /** Whether the bot is in it: chat.postMessage answers `not_in_channel` when false. */
  is_member: boolean;
  is_archived: boolean;
  topic?: string;
}

export interface FakeUser {
  id: string;
  name: string;
  real_name: string;
  is_bot: boolean;
  deleted: boolean;
  tz: string;
  email?: string;
}

export interface FakeResponse {
  /** The response_url that was POSTed to. */
  url: string;
  /** The JSON body (Bolt's respond() sends JSON), or the raw text if it was not JSON. */
  body: unknown;
  at: number;
}

export type EnvelopeType = 'events_api' | 'slash_commands' | 'interactive';

export interface FakeEnvelope {
  envelope_id: string;
  type: EnvelopeType;
  payload: unknown;
  accepts_response_payload: boolean;
  retry_attempt?: number;
  retry_reason?: string;
}

export interface FakeAck {
  envelope_id: string;
  /** The envelope type this ack answers (undefined if the id was never sent). */
  type: EnvelopeType | undefined;
  /** What the app put in the ack: SocketModeClient always sends an object, `{}` for a bare ack(). */
  payload: Record<string, unknown> | undefined;
  at: number;
}

export interface SendEnvelopeOptions {
  /** events_api only: Slack's retry counter (0 on the first delivery). */
  retryAttempt?: number;
  /** events_api only: e.g. 'timeout' or 'http_error'. */
  retryReason?: string;
  /** Defaults as Slack does: true for slash commands, view submissions and block suggestions. */
  acceptsResponsePayload?: boolean;
  /** How long to wait for a connection and then the ack (default: the fake's ackTimeoutMs, 3000). */
  timeoutMs?: number;
}

export interface FakeSlackOptions {
  botToken?: string;
  appToken?: string;
  /** Seeds for conversations.info and membership; unknown ids are synthesised as public, joined channels. */
  channels?: Record<string, Partial<Omit<FakeChannel, 'id'>>>;
  /** Seeds for users.info; unknown ids are synthesised. */
  users?: Record<string, Partial<Omit<FakeUser, 'id'>>>;
  /** usergroups.users.list members per group id; other ids answer `no_such_subteam`. */
  usergroups?: Record<string, string[]>;
  /** Default wait for a Socket Mode ack; Slack gives an app 3 s. */
  ackTimeoutMs?: number;
  /**
   * The scopes granted to the bot token (default DEFAULT_BOT_SCOPES). Slack names them in the
   * `x-oauth-scopes` header of every answer to that token (the WebClient exposes them as
   * `response_metadata.scopes`), and conversations.info/list answer `missing_scope` without
   * channels:read (groups:read for private channels), as Slack does.
   */
  scopes?: readonly string[];
}

export interface FakeSlack {
  /** `http://127.0.0.1:PORT/api/`: for WebClient's and Bolt's `clientOptions.slackApiUrl`. */
  readonly apiUrl: string;
  /** `http://127.0.0.1:PORT`. */
  readonly baseUrl: string;
  readonly botToken: string;
  readonly appToken: string;
  /** Every Web API call, in arrival order, failed ones and unknown methods included. */
  readonly calls: RecordedCall[];
  /** Messages per channel id in posting order (thread replies included, with thread_ts). */
  readonly messages: Map<string, FakeMessage[]>;
  readonly ephemerals: FakeEphemeral[];
  readonly reactions: FakeReaction[];
  /** Files in the order files.getUploadURLExternal announced them. */
  readonly files: FakeFile[];
  readonly channels: Map<string, FakeChannel>;
  readonly users: Map<string, FakeUser>;
  readonly usergroups: Map<string, string[]>;
  /** Bodies POSTed to response_urls made by responseUrl(). */
  readonly responses: FakeResponse[];
  /** Envelopes sent over Socket Mode, and the acks that came back. */
  readonly envelopes: FakeEnvelope[];
  readonly acks: FakeAck[];
  /** Socket Mode connections currently open, and opened since start. */
  readonly openSockets: number;
  readonly socketsOpened: number;

  callsTo(method: string): RecordedCall[];
  /** Make the next `times` calls to `method` fail with `fault` (queued after earlier faults). */
  failNext(method: string, fault: FakeFault, times?: number): void;
  /**
   * Make the calls to `method` whose arguments `match` fail with `fault` (before any queued
   * `failNext` fault), `times` times (default: until the returned function is called).
   */
  failWhen(
    method: string,
    match: (args: Record<string, unknown>) => boolean,
    fault: FakeFault,
    times?: number,
  ): () => void;
  /**
   * Hold the next `times` calls to `method` whose arguments `match` (default 1) before Slack
   * carries them out, as a slow network does, until `release()`: calls made meanwhile are carried
   * out first. `reached` resolves with the first held call once it arrives.
   */
  holdWhen(
    method: string,
    match: (args: Record<string, unknown>) => boolean,
    times?: number,
  ): { reached: Promise<RecordedCall>; release(): void };
  /** One message, looked up by channel and ts. */
  message(channel: string, ts: string): FakeMessage | undefined;
  /** The replies in a thread, oldest first (the parent excluded). */
  thread(channel: string, threadTs: string): FakeMessage[];
  /** Put a message in a channel as if a person (or another bot) had posted it. */
  seedMessage(
    channel: string,
    message: { text: string; user?: string; ts?: string; thread_ts?: string; blocks?: unknown[] },
  ): FakeMessage;
  /** A fresh response_url on this fake; POSTs to it land in `responses`. */
  responseUrl(): string;

  /** Resolves once a Socket Mode connection is open (hello sent); rejects after timeoutMs. */
  waitForSocket(timeoutMs?: number): Promise<void>;
  /**
   * Send an envelope on the newest Socket Mode connection (waiting for one if needed) and resolve
   * with the app's ack; rejects if none comes within the timeout, as Slack would then retry.
   */
  sendEnvelope(type: EnvelopeType, payload: unknown, options?: SendEnvelopeOptions): Promise<FakeAck>;
  /** Send `{type:'disconnect'}` on every connection, as Slack does before recycling a server. */
  sendDisconnect(reason?: 'warning' | 'refresh_requested' | 'link_disabled'): void;
  /**
   * Stop everything. Stop Socket Mode clients first (client.disconnect() or app.stop()): one that
   * loses its socket reconnects, retrying apps.connections.open against the closed port (up to
   * 100 times, with backoff), which keeps the test process alive.
   */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const JSON_TYPE = 'application/json; charset=utf-8';

/** Slack-looking timestamps: seconds.micros as a string, strictly increasing. */
function makeTsClock(startSeconds = 1_700_000_000) {
  let n = 0;
  return (): string => {
    n += 1;
    const micros = n * 100;
    const seconds = startSeconds + Math.floor(micros / 1_000_000);
    return `${seconds}.${String(micros % 1_000_000).padStart(6, '0')}`;
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Parse a request body the way Slack accepts them: form-urlencoded, JSON or multipart. */
async function parseArgs(contentType: string, raw: Buffer): Promise<Record<string, unknown>> {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (raw.length === 0) return {};
  if (type === 'application/json') {
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  }
  if (type === 'multipart/form-data') {
    const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
    const args: Record<string, unknown> = {};
    for (const [key, value] of form) {
      args[key] = typeof value === 'string' ? value : Buffer.from(await value.arrayBuffer());
    }
    return args;
  }
  return Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
}

function str(args: Record<string, unknown>, key: string): string | undefined {
  const value = args[key];
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** Form bodies carry objects as JSON strings (WebClient's serializeBody); JSON bodies carry them as is. */
function decoded(args: Record<string, unknown>, key: string): unknown {
  const value = args[key];
  if (typeof value !== 'string' || !/^\s*[[{]/.test(value)) return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function decodedArray(args: Record<string, unknown>, key: string): unknown[] | undefined {
  const value = decoded(args, key);
  return Array.isArray(value) ? value : undefined;
}

function truthy(args: Record<string, unknown>, key: string): boolean {
  const value = args[key];
  return value === true || value === 'true' || value === '1' || value === 1;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': JSON_TYPE, ...headers });
  res.end(JSON.stringify(body));
}

class SlackApiError extends Error {
  readonly code: string;
  readonly extra: Record<string, unknown>;
  constructor(code: string, extra: Record<string, unknown> = {}) {
    super(code);
    this.code = code;
    this.extra = extra;
  }
}

const fail = (code: string, extra?: Record<string, unknown>): never => {
  throw new SlackApiError(code, extra);
};

/** Blocks past Block Kit's limits are refused as Slack refuses them (helpers/block-kit.ts). */
const checkBlocks = (blocks: unknown[] | undefined) => {
  const problems = blocks ? blockKitProblems(blocks) : [];
  if (problems.length > 0) fail('invalid_blocks', { errors: problems });
};

// ---------------------------------------------------------------------------------------------
// A minimal WebSocket server side (RFC 6455), enough for Socket Mode
// ---------------------------------------------------------------------------------------------

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  let header: Buffer;
  if (length < 126) {
    header = Buffer.from([0x80 | opcode, length]);
  } else if (length < 65_536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, payload]);
}

interface SocketConnection {
  sendText(text: string): void;
  /**
   * Close politely: send a close frame, let the peer answer, then cut the TCP connection (after
   * 250 ms at the latest). Resolves once the socket is gone.
   */
  close(code: number): Promise<void>;
  readonly open: boolean;
}

/**
 * Wrap an upgraded socket. Client frames must be masked (RFC 6455 §5.1); pings are answered with
 * pongs, which SlackWebSocket needs or it drops the link after three unanswered pings; a close
 * frame is echoed, which SocketModeClient.disconnect() waits for (up to 30 s) before it resolves.
 */
function wrapSocket(
  socket: Duplex,
  head: Buffer,
  onText: (text: string) => void,
  onClosed: () => void,
): SocketConnection {
  let buffer: Buffer = Buffer.alloc(0);
  let fragments: Buffer[] = [];
  let fragmentOpcode = 0;
  let closeSent = false;
  let closed = false;
  let markClosed: () => void = () => {};
  const gone = new Promise<void>((resolve) => {
    markClosed = resolve;
  });

  const finish = () => {
    if (closed) return;
    closed = true;
    onClosed();
    markClosed();
  };
  const write = (opcode: number, payload: Buffer) => {
    if (!socket.destroyed && socket.writable) socket.write(encodeFrame(opcode, payload));
  };
  const sendClose = (code: number) => {
    if (closeSent) return;
    closeSent = true;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    write(OP_CLOSE, payload);
  };

  const handleFrame = (fin: boolean, opcode: number, payload: Buffer) => {
    switch (opcode) {
      case OP_PING:
        write(OP_PONG, payload);
        return;
      case OP_PONG:
        return;
      case OP_CLOSE: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1000;
        sendClose(code === 1005 || code === 1006 ? 1000 : code);
        socket.end();
        finish();
        return;
      }
      case OP_TEXT:
      case OP_BINARY:
      case OP_CONTINUATION: {
        if (opcode !== OP_CONTINUATION) {
          fragments = [];
          fragmentOpcode = opcode;
        }
        fragments.push(payload);
        if (!fin) return;
        const message = Buffer.concat(fragments);
        fragments = [];
        if (fragmentOpcode === OP_TEXT) onText(message.toString('utf8'));
        return;
      }
      default:
        sendClose(1002);
        socket.end();
        finish();
    }
  };

  const onData = (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    for (;;) {
      if (buffer.length < 2) return;
      const b0 = buffer[0]!;
      const b1 = buffer[1]!;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let length = b1 & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (!masked) {
        // A server must fail the connection on an unmasked client frame; so does Slack.
        sendClose(1002);
        socket.end();
        finish();
        return;
      }
      if (buffer.length < offset + 4 + length) return;
      const mask = buffer.subarray(offset, offset + 4);
      const payload = Buffer.from(buffer.subarray(offset + 4, offset + 4 + length));
      for (let i = 0; i < payload.length; i += 1) payload[i] = payload[i]! ^ mask[i & 3]!;
      buffer = buffer.subarray(offset + 4 + length);
      handleFrame(fin, opcode, payload);
      if (closed) return;
    }
  };

  socket.on('data', onData);
  socket.on('error', () => finish());
  socket.on('close', () => finish());
  if (head.length > 0) onData(head);

  return {
    sendText(text: string) {
      write(OP_TEXT, Buffer.from(text, 'utf8'));
    },
    close(code: number) {
      if (closed) return gone;
      sendClose(code);
      const timer = setTimeout(() => socket.destroy(), 250);
      return gone.then(() => {
        clearTimeout(timer);
        socket.destroy();
      });
    },
    get open() {
      return !closed && !closeSent;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------------

interface PendingAck {
  type: EnvelopeType;
  resolve: (ack: FakeAck) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export async function startFakeSlack(options: FakeSlackOptions = {}): Promise<FakeSlack> {
  const botToken = options.botToken ?? DEFAULT_BOT_TOKEN;
  const appToken = options.appToken ?? DEFAULT_APP_TOKEN;
  const ackTimeoutMs = options.ackTimeoutMs ?? 3000;
  const nextTs = makeTsClock();
  let fileCounter = 0;
  let responseCounter = 0;

  const calls: RecordedCall[] = [];
  const messages = new Map<string, FakeMessage[]>();
  const ephemerals: FakeEphemeral[] = [];
  const reactions: FakeReaction[] = [];
  const files: FakeFile[] = [];
  const responses: FakeResponse[] = [];
  const envelopes: FakeEnvelope[] = [];
  const acks: FakeAck[] = [];
  const faults = new Map<string, FakeFault[]>();
  /** Requests a `hang` fault holds open; close() ends them. */
  const hung = new Set<ServerResponse>();
  const matchedFaults: Array<{
    method: string;
    match: (args: Record<string, unknown>) => boolean;
    fault: FakeFault;
    left: number;
  }> = [];
  const tickets = new Set<string>();
  const sockets: SocketConnection[] = [];
  const pendingAcks = new Map<string, PendingAck>();
  const socketWaiters: Array<() => void> = [];
  let socketsOpened = 0;
  const holds: Array<{
    method: string;
    match: (args: Record<string, unknown>) => boolean;
    left: number;
    reached: (call: RecordedCall) => void;
    released: Promise<void>;
  }> = [];

  const channels = new Map<string, FakeChannel>();
  for (const [id, seed] of Object.entries(options.channels ?? {})) {
    channels.set(id, {
      id,
      name: seed.name ?? id.toLowerCase(),
      is_private: seed.is_private ?? false,
      is_member: seed.is_member ?? true,
      is_archived: seed.is_archived ?? false,
      ...(seed.topic !== undefined ? { topic: seed.topic } : {}),
    });
  }
  const users = new Map<string, FakeUser>();
  const addUser = (id: string, seed: Partial<Omit<FakeUser, 'id'>>) => {
    const name = seed.name ?? id.toLowerCase();
    users.set(id, {
      id,
      name,
      real_name: seed.real_name ?? name,
      is_bot: seed.is_bot ?? false,
      deleted: seed.deleted ?? false,
      tz: seed.tz ?? 'Etc/UTC',
      ...(seed.email !== undefined ? { email: seed.email } : {}),
    });
  };
  addUser(FAKE_IDS.botUser, { name: FAKE_IDS.botName, real_name: 'Nightshift', is_bot: true });
  for (const [id, seed] of Object.entries(options.users ?? {})) addUser(id, seed);
  const usergroups = new Map<string, string[]>(Object.entries(options.usergroups ?? {}));
  const scopes = [...(options.scopes ?? DEFAULT_BOT_SCOPES)];
  const requireScope = (needed: string) => {
    if (!scopes.includes(needed)) fail('missing_scope', { needed, provided: scopes.join(',') });
  };

  const channel = (id: string): FakeChannel => {
    let found = channels.get(id);
    if (!found) {
      found = { id, name: id.toLowerCase(), is_private: false, is_member: true, is_archived: false };
      channels.set(id, found);
    }
    return found;
  };
  const user = (id: string): FakeUser => {
    if (!users.has(id)) addUser(id, {});
    return users.get(id)!;
  };
  const channelMessages = (id: string): FakeMessage[] => {
    let list = messages.get(id);
    if (!list) {
      list = [];
      messages.set(id, list);
    }
    return list;
  };
  const findMessage = (channelId: string, ts: string) => messages.get(channelId)?.find((m) => m.ts === ts);
  const threadOf = (channelId: string, threadTs: string) =>
    (messages.get(channelId) ?? []).filter((m) => m.thread_ts === threadTs && m.ts !== threadTs);

  let baseUrl = '';
  const permalink = (channelId: string, ts: string, threadTs?: string) => {
    const base = `https://${FAKE_IDS.teamDomain}.slack.com/archives/${channelId}/p${ts.replace('.', '')}`;
    return threadTs && threadTs !== ts ? `${base}?thread_ts=${threadTs}&cid=${channelId}` : base;
  };

  /** The shape Slack returns for a message (chat.postMessage's `message`, conversations.history). */
  const apiMessage = (m: FakeMessage, withMetadata = false): Record<string, unknown> => {
    const replies = m.thread_ts === undefined ? [] : threadOf(m.channel, m.ts);
    return {
      type: 'message',
      user: m.user,
      ...(m.bot_id ? { bot_id: m.bot_id, app_id: FAKE_IDS.app } : {}),
      text: m.text ?? '',
      ts: m.ts,
      team: FAKE_IDS.team,
      ...(m.blocks ? { blocks: m.blocks } : {}),
      ...(m.attachments ? { attachments: m.attachments } : {}),
      ...(m.thread_ts ? { thread_ts: m.thread_ts } : {}),
      ...(m.thread_ts && m.thread_ts !== m.ts
        ? { parent_user_id: findMessage(m.channel, m.thread_ts)?.user }
        : {}),
      ...(m.thread_ts === m.ts
        ? { reply_count: replies.length, latest_reply: replies.at(-1)?.ts ?? m.ts }
        : {}),
      ...(m.edited ? { edited: m.edited } : {}),
      ...(m.metadata !== undefined && withMetadata ? { metadata: m.metadata } : {}),
      ...(m.reactions.length > 0
        ? { reactions: m.reactions.map((r) => ({ name: r.name, users: r.users, count: r.users.length })) }
        : {}),
    };
  };

  /** The messages files shared in a channel (in a thread, or at its top when threadTs is undefined) make. */
  const fileShares = (channelId: string, threadTs: string | undefined) =>
    files.flatMap((f) =>
      f.shares
        .filter((share) => share.channel_id === channelId && share.thread_ts === threadTs)
        .map((share) => ({
          ts: share.ts,
          api: (): Record<string, unknown> => ({
            type: 'message',
            user: FAKE_IDS.botUser,
            bot_id: FAKE_IDS.bot,
            text: share.initial_comment ?? '',
            ts: share.ts,
            team: FAKE_IDS.team,
            ...(share.thread_ts !== undefined ? { thread_ts: share.thread_ts } : {}),
            files: [{ id: f.id, name: f.filename, title: f.title ?? f.filename, mimetype: 'text/plain' }],
            upload: true,
          }),
        })),
    );

  const requireChannel = (args: Record<string, unknown>, key = 'channel'): FakeChannel => {
    const id = str(args, key);
    if (!id) return fail('channel_not_found');
    return channel(id);
  };

  type Handler = (args: Record<string, unknown>) => Record<string, unknown>;

  const methods: Record<string, Handler> = {
    'auth.test': () => ({
      url: `https://${FAKE_IDS.teamDomain}.slack.com/`,
      team: 'Nightshift Test',
      user: FAKE_IDS.botName,
      team_id: FAKE_IDS.team,
      user_id: FAKE_IDS.botUser,
      bot_id: FAKE_IDS.bot,
      is_enterprise_install: false,
    }),

    'chat.postMessage': (args) => {
      const target = requireChannel(args);
      if (target.is_archived) fail('is_archived');
      if (!target.is_member) fail('not_in_channel');
      const text = str(args, 'text');
      const blocks = decodedArray(args, 'blocks');
      const attachments = decodedArray(args, 'attachments');
      if (!text && !blocks?.length && !attachments?.length) fail('no_text');
      checkBlocks(blocks);
      const threadTs = str(args, 'thread_ts');
      if (threadTs !== undefined) {
        const parent = findMessage(target.id, threadTs);
        if (parent && parent.thread_ts === undefined) parent.thread_ts = parent.ts;
      }
      const message: FakeMessage = {
        channel: target.id,
        ts: nextTs(),
        ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
        ...(text !== undefined ? { text } : {}),
        ...(blocks ? { blocks } : {}),
        ...(attachments ? { attachments } : {}),
        ...(args.metadata !== undefined ? { metadata: decoded(args, 'metadata') } : {}),
        ...(truthy(args, 'reply_broadcast') ? { reply_broadcast: true } : {}),
        user: FAKE_IDS.botUser,
        bot_id: FAKE_IDS.bot,
        history: [],
        reactions: [],
        args: Object.fromEntries(Object.keys(args).map((key) => [key, decoded(args, key)])),
      };
      channelMessages(target.id).push(message);
      return { channel: target.id, ts: message.ts, message: apiMessage(message) };
    },

    'chat.update': (args) => {
      const target = requireChannel(args);
      const ts = str(args, 'ts');
      const message = ts === undefined ? undefined : findMessage(target.id, ts);
      if (!message) return fail('message_not_found');
      if (message.user !== FAKE_IDS.botUser) fail('cant_update_message');
      const text = str(args, 'text');
      const blocks = decodedArray(args, 'blocks');
      const attachments = decodedArray(args, 'attachments');
      if (text === undefined && blocks === undefined && attachments === undefined) fail('no_text');
      checkBlocks(blocks);
      message.history.push({
        ...(message.text !== undefined ? { text: message.text } : {}),
        ...(message.blocks ? { blocks: message.blocks } : {}),
        ...(message.attachments ? { attachments: message.attachments } : {}),
        at: Date.now(),
      });
      // As in Slack, fields left out keep their value; an empty blocks array removes the blocks.
      if (text !== undefined) message.text = text;
      if (blocks !== undefined) message.blocks = blocks;
      if (attachments !== undefined) message.attachments = attachments;
      message.edited = { user: FAKE_IDS.botUser, ts: nextTs() };
      return { channel: target.id, ts: message.ts, text: message.text ?? '', message: apiMessage(message) };
    },

    'chat.postEphemeral': (args) => {
      const target = requireChannel(args);
      const to = str(args, 'user');
      if (!to) return fail('user_not_found');
      const text = str(args, 'text');
      const blocks = decodedArray(args, 'blocks');
      if (!text && !blocks?.length) fail('no_text');
      const threadTs = str(args, 'thread_ts');
      const ephemeral: FakeEphemeral = {
        channel: target.id,
        user: to,
        ts: nextTs(),
        ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
        ...(text !== undefined ? { text } : {}),
        ...(blocks ? { blocks } : {}),
      };
      ephemerals.push(ephemeral);
      return { message_ts: ephemeral.ts };
    },

    // Lenient: any ts gets a permalink, so links to messages the fake never saw still work.
    'chat.getPermalink': (args) => {
      const target = requireChannel(args);
      const ts = str(args, 'message_ts') ?? fail('message_not_found');
      return {
        channel: target.id,
        permalink: permalink(target.id, ts, findMessage(target.id, ts)?.thread_ts),
      };
    },

    'reactions.add': (args) => {
      const channelId = str(args, 'channel');
      const timestamp = str(args, 'timestamp');
      if (!channelId || !timestamp) return fail('no_item_specified');
      const name = str(args, 'name');
      if (!name || name.includes(':')) return fail('invalid_name');
      const message = findMessage(channelId, timestamp);
      if (message) {
        let reaction = message.reactions.find((r) => r.name === name);
        if (reaction?.users.includes(FAKE_IDS.botUser)) fail('already_reacted');
        if (!reaction) {
          reaction = { name, users: [] };
          message.reactions.push(reaction);
        }
        reaction.users.push(FAKE_IDS.botUser);
      } else if (
        reactions.some((r) => r.channel === channelId && r.timestamp === timestamp && r.name === name)
      ) {
        fail('already_reacted');
      }
      reactions.push({ channel: channelId, timestamp, name, user: FAKE_IDS.botUser });
      return {};
    },

    'conversations.info': (args) => {
      const id = str(args, 'channel');
      const seeded = id === undefined ? undefined : channels.get(id);
      requireScope(seeded?.is_private ? 'groups:read' : 'channels:read');
      // Slack hides a private channel from a bot outside it.
      if (seeded?.is_private && !seeded.is_member) fail('channel_not_found');
      const target = requireChannel(args);
      return { channel: apiChannel(target) };
    },

    // Seeded and synthesised channels, in insertion order; the cursor is an offset.
    'conversations.list': (args) => {
      const types = (str(args, 'types') ?? 'public_channel').split(',').map((t) => t.trim());
      for (const type of types) requireScope(type === 'private_channel' ? 'groups:read' : 'channels:read');
      const excludeArchived = truthy(args, 'exclude_archived');
      const visible = [...channels.values()].filter(
        (c) =>
          types.includes(c.is_private ? 'private_channel' : 'public_channel') &&
          (!c.is_private || c.is_member) &&
          !(excludeArchived && c.is_archived),
      );
      const offset = Number(str(args, 'cursor') || 0);
      const limit = Math.min(Number(str(args, 'limit') ?? 100), 1000);
      const page = visible.slice(offset, offset + limit);
      const next = offset + limit < visible.length ? String(offset + limit) : '';
      return { channels: page.map(apiChannel), response_metadata: { next_cursor: next } };
    },

    'conversations.join': (args) => {
      const target = requireChannel(args);
      if (target.is_archived) fail('is_archived');
      if (target.is_private) fail('method_not_supported_for_channel_type');
      const already = target.is_member;
      target.is_member = true;
      return already
        ? {
            channel: apiChannel(target),
            warning: 'already_in_channel',
            response_metadata: { warnings: ['already_in_channel'] },
          }
        : { channel: apiChannel(target) };
    },

    'conversations.history': (args) => {
      const target = requireChannel(args);
      const latest = str(args, 'latest');
      const oldest = str(args, 'oldest');
      const inclusive = truthy(args, 'inclusive');
      const limit = Number(str(args, 'limit') ?? 100);
      const inRange = (ts: string) =>
        (latest === undefined || (inclusive ? Number(ts) <= Number(latest) : Number(ts) < Number(latest))) &&
        (oldest === undefined || (inclusive ? Number(ts) >= Number(oldest) : Number(ts) > Number(oldest)));
      const top = [
        ...(messages.get(target.id) ?? [])
          .filter((m) => m.thread_ts === undefined || m.thread_ts === m.ts || m.reply_broadcast)
          .map((m) => ({ ts: m.ts, api: () => apiMessage(m, truthy(args, 'include_all_metadata')) })),
        ...fileShares(target.id, undefined),
      ]
        .filter((m) => inRange(m.ts))
        .sort((a, b) => Number(b.ts) - Number(a.ts));
      return {
        messages: top.slice(0, limit).map((m) => m.api()),
        has_more: top.length > limit,
        pin_count: 0,
        response_metadata: { next_cursor: '' },
      };
    },

    'conversations.replies': (args) => {
      const target = requireChannel(args);
      const ts = str(args, 'ts') ?? fail('thread_not_found');
      const parent = findMessage(target.id, ts) ?? fail('thread_not_found');
      const root = parent.thread_ts ?? parent.ts;
      const head = findMessage(target.id, root);
      return {
        messages: [
          ...[...(head ? [head] : []), ...threadOf(target.id, root)].map((m) => ({
            ts: m.ts,
            api: () => apiMessage(m, truthy(args, 'include_all_metadata')),
          })),
          ...fileShares(target.id, root),
        ]
          .sort((a, b) => Number(a.ts) - Number(b.ts))
          .map((m) => m.api()),
        has_more: false,
        response_metadata: { next_cursor: '' },
      };
    },

    'users.info': (args) => {
      const id = str(args, 'user') ?? fail('user_not_found');
      const found = user(id);
      return {
        user: {
          id: found.id,
          team_id: FAKE_IDS.team,
          name: found.name,
          deleted: found.deleted,
          real_name: found.real_name,
          tz: found.tz,
          is_bot: found.is_bot,
          is_admin: false,
          profile: {
            real_name: found.real_name,
            display_name: found.name,
            ...(found.email !== undefined ? { email: found.email } : {}),
            ...(found.is_bot ? { bot_id: FAKE_IDS.bot } : {}),
          },
        },
      };
    },

    'usergroups.users.list': (args) => {
      const id = str(args, 'usergroup');
      const members = id === undefined ? undefined : usergroups.get(id);
      if (!members) return fail('no_such_subteam');
      return { users: [...members] };
    },

    'files.getUploadURLExternal': (args) => {
      const filename = str(args, 'filename');
      const length = Number(str(args, 'length'));
      if (!filename || !Number.isInteger(length) || length < 0) {
        return fail('invalid_arguments', {
          response_metadata: { messages: ['[ERROR] missing required field: filename or length'] },
        });
      }
      fileCounter += 1;
      const id = `F0FAKE${String(fileCounter).padStart(4, '0')}`;
      const altText = str(args, 'alt_text');
      const snippetType = str(args, 'snippet_type');
      files.push({
        id,
        filename,
        length,
        completed: false,
        shares: [],
        ...(altText !== undefined ? { alt_text: altText } : {}),
        ...(snippetType !== undefined ? { snippet_type: snippetType } : {}),
      });
      return { upload_url: `${baseUrl}/upload/v1/${id}`, file_id: id };
    },

    'files.completeUploadExternal': (args) => {
      const list = decodedArray(args, 'files');
      if (!list?.length) return fail('invalid_arguments');
      const channelId = str(args, 'channel_id') ?? str(args, 'channels');
      const threadTs = str(args, 'thread_ts');
      const initialComment = str(args, 'initial_comment');
      const blocks = decodedArray(args, 'blocks');
      const done: FakeFile[] = [];
      for (const entry of list) {
        const { id, title } = (entry ?? {}) as { id?: unknown; title?: unknown };
        const file = files.find((f) => f.id === id);
        if (!file || file.bytes === undefined) return fail('file_not_found');
        done.push(file);
        file.completed = true;
        if (typeof title === 'string') file.title = title;
        if (channelId !== undefined) file.channel_id = channelId;
        if (threadTs !== undefined) file.thread_ts = threadTs;
        if (initialComment !== undefined) file.initial_comment = initialComment;
        if (blocks !== undefined) file.blocks = blocks;
        if (channelId !== undefined)
          file.shares.push({
            channel_id: channelId,
            ts: nextTs(),
            ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
            ...(initialComment !== undefined ? { initial_comment: initialComment } : {}),
          });
      }
      return {
        files: done.map((f) => ({
          id: f.id,
          created: 1_700_000_000,
          timestamp: 1_700_000_000,
          name: f.filename,
          title: f.title ?? f.filename,
          mimetype: 'text/plain',
          filetype: 'text',
          user: FAKE_IDS.botUser,
          size: f.bytes?.length ?? f.length,
          url_private: `${baseUrl}/files-pri/${FAKE_IDS.team}-${f.id}/${f.filename}`,
          permalink: `https://${FAKE_IDS.teamDomain}.slack.com/files/${FAKE_IDS.botUser}/${f.id}/${f.filename}`,
        })),
      };
    },

    'apps.connections.open': () => {
      const ticket = randomUUID();
      tickets.add(ticket);
      return { url: `${baseUrl.replace(/^http/, 'ws')}/socket?ticket=${ticket}&app_id=${FAKE_IDS.app}` };
    },
  };

  function apiChannel(c: FakeChannel): Record<string, unknown> {
    return {
      id: c.id,
      name: c.name,
      is_channel: !c.is_private,
      is_group: false,
      is_im: false,
      is_private: c.is_private,
      is_archived: c.is_archived,
      is_member: c.is_member,
      created: 1_700_000_000,
      context_team_id: FAKE_IDS.team,
      topic: { value: c.topic ?? '', creator: '', last_set: 0 },
      purpose: { value: '', creator: '', last_set: 0 },
    };
  }

  /** Which token a method needs: app-level for apps.connections.open, the bot token otherwise. */
  const checkToken = (method: string, token: string | undefined) => {
    const wanted = method === 'apps.connections.open' ? appToken : botToken;
    const other = method === 'apps.connections.open' ? botToken : appToken;
    if (!token) fail('not_authed');
    if (token === other) fail('not_allowed_token_type');
    if (token !== wanted) fail('invalid_auth');
  };

  async function handleApi(req: IncomingMessage, res: ServerResponse, method: string, raw: Buffer) {
    const contentType = req.headers['content-type'] ?? '';
    const call: RecordedCall = {
      method,
      token: undefined,
      args: {},
      contentType,
      at: Date.now(),
      status: 200,
    };
    calls.push(call);
    const answer = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
      call.status = status;
      call.response = body;
      // Slack names the token's scopes on every answer to a token it knows.
      const granted =
        call.token === botToken
          ? scopes.join(',')
          : call.token === appToken
            ? 'connections:write'
            : undefined;
      sendJson(
        res,
        status,
        body,
        granted === undefined ? headers : { 'x-oauth-scopes': granted, ...headers },
      );
    };
    try {
      const query = Object.fromEntries(new URL(req.url ?? '/', 'http://x').searchParams);
      call.args = { ...query, ...(await parseArgs(contentType, raw)) };
    } catch {
      answer(200, { ok: false, error: 'invalid_form_data' });
      return;
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    call.token = bearer ?? str(call.args, 'token');

    const hold = holds.find((h) => h.method === method && h.left > 0 && h.match(call.args));
    if (hold) {
      hold.left -= 1;
      hold.reached(call);
      await hold.released;
    }
    const matched = matchedFaults.find((f) => f.method === method && f.left > 0 && f.match(call.args));
    if (matched) matched.left -= 1;
    const fault = matched?.fault ?? faults.get(method)?.shift();
    if (fault && 'hang' in fault) {
      call.fault = fault;
      call.status = 0;
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (fault && 'lostAnswer' in fault) {
      call.fault = fault;
      call.status = 0;
      try {
        checkToken(method, call.token);
        methods[method]?.(call.args);
      } catch {}
      res.socket?.destroy();
      return;
    }
    if (fault) {
      call.fault = fault;
      if ('error' in fault) {
        answer(200, { ok: false, error: fault.error, ...fault.extra });
      } else if (fault.status === 429 && 'retryAfter' in fault) {
        answer(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(fault.retryAfter) });
      } else {
        call.status = fault.status;
        res.writeHead(fault.status, { 'content-type': 'text/plain' });
        res.end('body' in fault && fault.body !== undefined ? fault.body : 'Internal Server Error');
      }
      return;
    }

    const handler = methods[method];
    if (!handler) {
      answer(200, { ok: false, error: 'unknown_method', req_method: method });
      return;
    }
    try {
      checkToken(method, call.token);
      answer(200, { ok: true, ...handler(call.args) });
    } catch (error) {
      if (!(error instanceof SlackApiError)) throw error;
      answer(200, { ok: false, error: error.code, ...error.extra });
    }
  }

  /** The pre-signed upload URL: no token needed; the WebClient posts multipart with the bytes in `body`. */
  async function handleUpload(req: IncomingMessage, res: ServerResponse, id: string, raw: Buffer) {
    const file = files.find((f) => f.id === id);
    if (!file || req.method !== 'POST') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('Not Found');
      return;
    }
    const contentType = req.headers['content-type'] ?? '';
    let bytes = raw;
    if (contentType.toLowerCase().startsWith('multipart/form-data')) {
      const args = await parseArgs(contentType, raw);
      const part = Object.values(args).find((value) => Buffer.isBuffer(value)) ?? args.body ?? args.file;
      bytes = Buffer.isBuffer(part) ? part : Buffer.from(String(part ?? ''), 'utf8');
    }
    file.bytes = bytes;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`OK - ${bytes.length}`);
  }

  const server = createServer((req, res) => {
    void (async () => {
      const raw = await readBody(req);
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const api = /^\/api\/([^/]+)$/.exec(path);
      const upload = /^\/upload\/v1\/([^/]+)$/.exec(path);
      if (api) {
        await handleApi(req, res, api[1]!, raw);
      } else if (upload) {
        await handleUpload(req, res, upload[1]!, raw);
      } else if (path.startsWith('/response/') && req.method === 'POST') {
        const text = raw.toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {}
        responses.push({ url: `${baseUrl}${path}`, body, at: Date.now() });
        sendJson(res, 200, { ok: true });
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('Not Found');
      }
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(error));
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const key = req.headers['sec-websocket-key'];
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (url.pathname !== '/socket') return refuse('404 Not Found');
    // Tickets from apps.connections.open are single-use, as on Slack: a reconnect must ask again.
    const ticket = url.searchParams.get('ticket') ?? '';
    if (!tickets.delete(ticket)) return refuse('401 Unauthorized');
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      return refuse('400 Bad Request');
    }
    const accept = createHash('sha1').update(`${key}${WS_GUID}`).digest('base64');
    // No Sec-WebSocket-Extensions in the answer: undici offers permessage-deflate, we decline it.
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const connection: SocketConnection = wrapSocket(socket, head, onSocketText, () => {
      const index = sockets.indexOf(connection);
      if (index >= 0) sockets.splice(index, 1);
    });
    sockets.push(connection);
    socketsOpened += 1;
    connection.sendText(
      JSON.stringify({
        type: 'hello',
        num_connections: sockets.length,
        debug_info: { host: 'applink-fake-1', build_number: 1, approximate_connection_time: 18060 },
        connection_info: { app_id: FAKE_IDS.app },
      }),
    );
    for (const wake of socketWaiters.splice(0)) wake();
  });

  function onSocketText(text: string) {
    let message: { envelope_id?: unknown; payload?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return;
    }
    if (typeof message.envelope_id !== 'string') return;
    const pending = pendingAcks.get(message.envelope_id);
    const payload =
      message.payload !== null && typeof message.payload === 'object'
        ? (message.payload as Record<string, unknown>)
        : undefined;
    const ack: FakeAck = {
      envelope_id: message.envelope_id,
      type: pending?.type ?? envelopes.find((e) => e.envelope_id === message.envelope_id)?.type,
      payload,
      at: Date.now(),
    };
    acks.push(ack);
    if (pending) {
      pendingAcks.delete(message.envelope_id);
      clearTimeout(pending.timer);
      pending.resolve(ack);
    }
  }

  const openSocket = () => sockets.filter((s) => s.open).at(-1);

  function waitForSocket(timeoutMs = ackTimeoutMs): Promise<void> {
    if (openSocket()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const index = socketWaiters.indexOf(wake);
        if (index >= 0) socketWaiters.splice(index, 1);
        reject(new Error(`no Socket Mode connection within ${timeoutMs} ms`));
      }, timeoutMs);
      socketWaiters.push(wake);
    });
  }

  async function sendEnvelope(
    type: EnvelopeType,
    payload: unknown,
    opts: SendEnvelopeOptions = {},
  ): Promise<FakeAck> {
    const timeoutMs = opts.timeoutMs ?? ackTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    await waitForSocket(timeoutMs);
    const socket = openSocket();
    if (!socket) throw new Error('the Socket Mode connection closed before the envelope was sent');
    const payloadType = (payload as { type?: unknown } | null)?.type;
    const envelope: FakeEnvelope = {
      envelope_id: randomUUID(),
      payload,
      type,
      accepts_response_payload:
        opts.acceptsResponsePayload ??
        (type === 'slash_commands' ||
          (type === 'interactive' &&
            (payloadType === 'view_submission' || payloadType === 'block_suggestion'))),
      ...(type === 'events_api'
        ? { retry_attempt: opts.retryAttempt ?? 0, retry_reason: opts.retryReason ?? '' }
        : {}),
    };
    envelopes.push(envelope);
    return new Promise<FakeAck>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          pendingAcks.delete(envelope.envelope_id);
          reject(new Error(`no ack for ${type} envelope ${envelope.envelope_id} within ${timeoutMs} ms`));
        },
        Math.max(0, deadline - Date.now()),
      );
      pendingAcks.set(envelope.envelope_id, { type, resolve, reject, timer });
      socket.sendText(JSON.stringify(envelope));
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  // A test that throws before close() must not hang the run: the listener alone keeps nothing alive.
  server.unref();
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;

  return {
    apiUrl: `${baseUrl}/api/`,
    baseUrl,
    botToken,
    appToken,
    calls,
    messages,
    ephemerals,
    reactions,
    files,
    channels,
    users,
    usergroups,
    responses,
    envelopes,
    acks,
    get openSockets() {
      return sockets.filter((s) => s.open).length;
    },
    get socketsOpened() {
      return socketsOpened;
    },
    callsTo: (method) => calls.filter((c) => c.method === method),
    failNext(method, fault, times = 1) {
      const queue = faults.get(method) ?? [];
      for (let i = 0; i < times; i += 1) queue.push(fault);
      faults.set(method, queue);
    },
    failWhen(method, match, fault, times = Number.POSITIVE_INFINITY) {
      const entry = { method, match, fault, left: times };
      matchedFaults.push(entry);
      return () => {
        entry.left = 0;
      };
    },
    holdWhen(method, match, times = 1) {
      let reached!: (call: RecordedCall) => void;
      let release!: () => void;
      const first = new Promise<RecordedCall>((resolve) => {
        reached = resolve;
      });
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      holds.push({ method, match, left: times, reached, released });
      return { reached: first, release };
    },
    message: findMessage,
    thread: threadOf,
    seedMessage(channelId, seed) {
      if (seed.thread_ts !== undefined) {
        const parent = findMessage(channelId, seed.thread_ts);
        if (parent && parent.thread_ts === undefined) parent.thread_ts = parent.ts;
      }
      const message: FakeMessage = {
        channel: channelId,
        ts: seed.ts ?? nextTs(),
        text: seed.text,
        user: seed.user ?? FAKE_IDS.user,
        ...(seed.thread_ts !== undefined ? { thread_ts: seed.thread_ts } : {}),
        ...(seed.blocks ? { blocks: seed.blocks } : {}),
        history: [],
        reactions: [],
      };
      channelMessages(channelId).push(message);
      return message;
    },
    responseUrl() {
      responseCounter += 1;
      return `${baseUrl}/response/${FAKE_IDS.team}/${responseCounter}/${randomUUID().replaceAll('-', '')}`;
    },
    waitForSocket,
    sendEnvelope,
    sendDisconnect(reason = 'refresh_requested') {
      const message = JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-fake-1' } });
      for (const socket of sockets) if (socket.open) socket.sendText(message);
    },
    async close() {
      for (const res of hung) res.socket?.destroy();
      hung.clear();
      for (const pending of pendingAcks.values()) {
        clearTimeout(pending.timer);
        pending.reject(new Error('fake Slack closed before the ack arrived'));
      }
      pendingAcks.clear();
      // Close frames rather than a cut: a SocketModeClient mid-disconnect (Bolt's stop() does not
      // wait for it) whose TCP connection just drops waits 30 s for a close frame before it exits.
      await Promise.all(sockets.map((socket) => socket.close(1001)));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Signed deliveries to the app's HTTP receiver
// ---------------------------------------------------------------------------------------------

/** Slack's v0 request signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}`. */
export function slackSignature(signingSecret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export interface SignedRequestOptions {
  /** Seconds since the epoch (default: now); Bolt refuses anything older than five minutes. */
  timestamp?: number;
  /** Slack's redelivery headers, x-slack-retry-num / x-slack-retry-reason (e.g. 'http_timeout'). */
  retryNum?: number;
  retryReason?: string;
  /** Send this signature instead of the right one, to test rejection. */
  signature?: string;
}

export interface SignedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * POST `body` to the app as Slack does, signed with `signingSecret`. The content type defaults to
 * JSON for a body that looks like JSON and to form-urlencoded otherwise; Bolt compares it exactly
 * with 'application/x-www-form-urlencoded', so no charset parameter is added.
 */
export async function signedRequest(
  url: string,
  signingSecret: string,
  body: string,
  contentType?: string,
  options: SignedRequestOptions = {},
): Promise<SignedResponse> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': contentType ?? (body.trimStart().startsWith('{') ? 'application/json' : FORM_TYPE),
    'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': options.signature ?? slackSignature(signingSecret, timestamp, body),
  };
  if (options.retryNum !== undefined) headers['x-slack-retry-num'] = String(options.retryNum);
  if (options.retryReason !== undefined) headers['x-slack-retry-reason'] = options.retryReason;
  const res = await fetch(url, { method: 'POST', headers, body });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

// ---------------------------------------------------------------------------------------------
// Payload builders: objects for Socket Mode envelopes, strings for HTTP bodies
// ---------------------------------------------------------------------------------------------

let triggerCounter = 0;
const triggerId = () => {
  triggerCounter += 1;
  return `1700000000.${triggerCounter}.${randomUUID().replaceAll('-', '').slice(0, 16)}`;
};
const defaultResponseUrl = () =>
  `https://hooks.slack.com/commands/${FAKE_IDS.team}/${1000 + triggerCounter}/${randomUUID().replaceAll('-', '')}`;

export interface SlashCommandInput {
  command?: string;
  text?: string;
  user_id?: string;
  user_name?: string;
  channel_id?: string;
  channel_name?: string;
  team_id?: string;
  team_domain?: string;
  api_app_id?: string;
  /** Where respond() posts; pass fake.responseUrl() to record it (default: a hooks.slack.com URL). */
  response_url?: string;
  trigger_id?: string;
}

/** A slash command as Socket Mode carries it (the same fields as the HTTP form, all strings). */
export function slashCommandPayload(input: SlashCommandInput = {}): Record<string, string> {
  return {
    token: FAKE_IDS.verificationToken,
    team_id: input.team_id ?? FAKE_IDS.team,
    team_domain: input.team_domain ?? FAKE_IDS.teamDomain,
    channel_id: input.channel_id ?? FAKE_IDS.channel,
    channel_name: input.channel_name ?? FAKE_IDS.channelName,
    user_id: input.user_id ?? FAKE_IDS.user,
    user_name: input.user_name ?? FAKE_IDS.userName,
    command: input.command ?? '/investigate',
    text: input.text ?? '',
    api_app_id: input.api_app_id ?? FAKE_IDS.app,
    is_enterprise_install: 'false',
    response_url: input.response_url ?? defaultResponseUrl(),
    trigger_id: input.trigger_id ?? triggerId(),
  };
}

/** A slash command as Slack POSTs it over HTTP: application/x-www-form-urlencoded. */
export function slashCommandBody(input: SlashCommandInput = {}): string {
  return new URLSearchParams(slashCommandPayload(input)).toString();
}

export interface EventCallbackOptions {
  eventId?: string;
  teamId?: string;
  apiAppId?: string;
  /** Seconds since the epoch (default: now). */
  eventTime?: number;
}

let eventCounter = 0;

/** The event_callback wrapper Slack puts around every Events API event (HTTP body and Socket Mode payload). */
export function eventCallbackPayload(
  event: Record<string, unknown>,
  options: EventCallbackOptions = {},
): Record<string, unknown> {
  eventCounter += 1;
  const teamId = options.teamId ?? FAKE_IDS.team;
  return {
    token: FAKE_IDS.verificationToken,
    team_id: teamId,
    context_team_id: teamId,
    context_enterprise_id: null,
    api_app_id: options.apiAppId ?? FAKE_IDS.app,
    event,
    type: 'event_callback',
    event_id: options.eventId ?? `Ev0FAKE${String(eventCounter).padStart(5, '0')}`,
    event_time: options.eventTime ?? Math.floor(Date.now() / 1000),
    authorizations: [
      {
        enterprise_id: null,
        team_id: teamId,
        user_id: FAKE_IDS.botUser,
        is_bot: true,
        is_enterprise_install: false,
      },
    ],
    is_ext_shared_channel: false,
    event_context: `4-fake-${eventCounter}`,
  };
}

export function eventCallbackBody(
  event: Record<string, unknown>,
  options: EventCallbackOptions = {},
): string {
  return JSON.stringify(eventCallbackPayload(event, options));
}

export interface ReactionAddedInput {
  user?: string;
  reaction: string;
  item: { type: 'message'; channel: string; ts: string };
  item_user?: string;
  event_ts?: string;
}

export function reactionAddedEvent(input: ReactionAddedInput): Record<string, unknown> {
  return {
    type: 'reaction_added',
    user: input.user ?? FAKE_IDS.user,
    reaction: input.reaction,
    item: input.item,
    item_user: input.item_user ?? FAKE_IDS.user,
    event_ts: input.event_ts ?? `${Math.floor(Date.now() / 1000)}.000100`,
  };
}

export interface AppMentionInput {
  user?: string;
  /** The message text; Slack writes the mention as `<@BOTUSERID>` (default: a mention plus nothing). */
  text?: string;
  channel?: string;
  ts?: string;
  thread_ts?: string;
}

export function appMentionEvent(input: AppMentionInput = {}): Record<string, unknown> {
  const ts = input.ts ?? `${Math.floor(Date.now() / 1000)}.000200`;
  return {
    type: 'app_mention',
    user: input.user ?? FAKE_IDS.user,
    text: input.text ?? `<@${FAKE_IDS.botUser}>`,
    ts,
    ...(input.thread_ts !== undefined ? { thread_ts: input.thread_ts } : {}),
    channel: input.channel ?? FAKE_IDS.channel,
    event_ts: ts,
    team: FAKE_IDS.team,
    client_msg_id: randomUUID(),
  };
}

export interface BlockActionInput {
  action_id: string;
  value?: string;
  block_id?: string;
  type?: string;
  text?: string;
}

export interface BlockActionsInput {
  user?: string | { id: string; username?: string; name?: string; team_id?: string };
  actions: BlockActionInput[];
  /** The message holding the button (at least its ts); Slack sends it whole. */
  message?: Record<string, unknown> & { ts?: string };
  channel?: string | { id: string; name?: string };
  container?: Record<string, unknown>;
  response_url?: string;
  trigger_id?: string;
  state?: Record<string, unknown>;
}

/** A block_actions interaction (a button click) as Socket Mode carries it. */
export function blockActionsPayload(input: BlockActionsInput): Record<string, unknown> {
  const user =
    typeof input.user === 'object'
      ? { username: input.user.id.toLowerCase(), team_id: FAKE_IDS.team, ...input.user }
      : {
          id: input.user ?? FAKE_IDS.user,
          username: input.user === undefined ? FAKE_IDS.userName : input.user.toLowerCase(),
          name: input.user === undefined ? FAKE_IDS.userName : input.user.toLowerCase(),
          team_id: FAKE_IDS.team,
        };
  const channel =
    typeof input.channel === 'object'
      ? input.channel
      : { id: input.channel ?? FAKE_IDS.channel, name: FAKE_IDS.channelName };
  const actionTs = `${Math.floor(Date.now() / 1000)}.${String(Date.now() % 1_000_000).padStart(6, '0')}`;
  return {
    type: 'block_actions',
    user,
    api_app_id: FAKE_IDS.app,
    token: FAKE_IDS.verificationToken,
    container: input.container ?? {
      type: 'message',
      message_ts: input.message?.ts,
      channel_id: channel.id,
      is_ephemeral: false,
    },
    trigger_id: input.trigger_id ?? triggerId(),
    team: { id: FAKE_IDS.team, domain: FAKE_IDS.teamDomain },
    enterprise: null,
    is_enterprise_install: false,
    channel,
    ...(input.message ? { message: { type: 'message', ...input.message } } : {}),
    state: input.state ?? { values: {} },
    response_url: input.response_url ?? defaultResponseUrl(),
    actions: input.actions.map((action) => ({
      action_id: action.action_id,
      block_id: action.block_id ?? 'actions',
      text: { type: 'plain_text', text: action.text ?? action.action_id, emoji: true },
      ...(action.value !== undefined ? { value: action.value } : {}),
      type: action.type ?? 'button',
      action_ts: actionTs,
    })),
  };
}

/** A block_actions interaction as Slack POSTs it over HTTP: form-urlencoded `payload=<json>`. */
export function blockActionsBody(input: BlockActionsInput): string {
  return new URLSearchParams({ payload: JSON.stringify(blockActionsPayload(input)) }).toString();
}

/** The one-time handshake Slack sends when the Events API request URL is saved. */
export function urlVerificationBody(challenge: string): string {
  return JSON.stringify({ token: FAKE_IDS.verificationToken, challenge, type: 'url_verification' });
}
