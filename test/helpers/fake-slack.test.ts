/**
 * The fake Slack must speak the real wire formats, or tests built on it prove nothing. So these
 * drive it with the real clients: WebClient (form bodies, Bearer tokens, 429 retries, uploadV2's
 * three steps), SocketModeClient (apps.connections.open, hello, envelopes, acks, reconnects) and a
 * Bolt App behind its HTTPReceiver (signature checks, slash command acks, interactivity, events).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  App,
  type BufferedIncomingMessage,
  HTTPModuleFunctions,
  type Logger,
  SocketModeReceiver,
  verifySlackRequest,
} from '@slack/bolt';
import { SocketModeClient } from '@slack/socket-mode';
import { WebAPIHTTPError, WebAPIPlatformError, WebClient, WebClientEvent } from '@slack/web-api';
import {
  appMentionEvent,
  blockActionsBody,
  blockActionsPayload,
  DEFAULT_BOT_SCOPES,
  eventCallbackBody,
  eventCallbackPayload,
  FAKE_IDS,
  type FakeSlack,
  FORM_TYPE,
  reactionAddedEvent,
  signedRequest,
  slashCommandBody,
  slashCommandPayload,
  startFakeSlack,
  urlVerificationBody,
} from './fake-slack.ts';

const silent: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  setLevel() {},
  getLevel: () => 'error' as ReturnType<Logger['getLevel']>,
  setName() {},
};

const CHANNEL = FAKE_IDS.channel;

/** assert.rejects predicate for Slack's `{ok:false, error}` as the WebClient throws it. */
const slackError = (code: string) => (error: unknown) => {
  assert.ok(error instanceof WebAPIPlatformError, `expected a platform error, got ${String(error)}`);
  assert.equal(error.data.error, code);
  return true;
};

async function eventually(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('fake Slack Web API, driven by the real WebClient', () => {
  let fake: FakeSlack;
  let client: WebClient;

  before(async () => {
    fake = await startFakeSlack({
      usergroups: { S0ONCALL01: ['U0ALICE001', 'U0BOB00001'] },
      channels: { C0PRIVATE1: { name: 'ops', is_member: false } },
      users: { U0ALICE001: { name: 'alice', real_name: 'Alice Example', tz: 'Europe/Berlin' } },
    });
    client = new WebClient(fake.botToken, { slackApiUrl: fake.apiUrl, logger: silent });
  });
  after(() => fake.close());

  it('answers auth.test for the bot token and refuses other tokens', async () => {
    const auth = await client.auth.test();
    assert.equal(auth.ok, true);
    assert.equal(auth.team_id, FAKE_IDS.team);
    assert.equal(auth.user_id, FAKE_IDS.botUser);
    assert.equal(auth.bot_id, FAKE_IDS.bot);
    assert.match(auth.url ?? '', /^https:\/\/.+\.slack\.com\/$/);

    const wrong = new WebClient('xoxb-wrong', { slackApiUrl: fake.apiUrl, logger: silent });
    await assert.rejects(wrong.auth.test(), slackError('invalid_auth'));
    const appLevel = new WebClient(fake.appToken, { slackApiUrl: fake.apiUrl, logger: silent });
    await assert.rejects(
      appLevel.chat.postMessage({ channel: CHANNEL, text: 'hi' }),
      slackError('not_allowed_token_type'),
    );

    const [first, second] = fake.callsTo('auth.test');
    assert.equal(first?.token, fake.botToken);
    assert.equal(second?.token, 'xoxb-wrong');
    assert.equal(second?.response?.error, 'invalid_auth');
  });

  it('records messages, thread replies and updates as Slack saw them', async () => {
    const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: '*Disk full* on web-3' } }];
    const root = await client.chat.postMessage({ channel: CHANNEL, text: 'Disk full on web-3', blocks });
    assert.match(root.ts ?? '', /^\d{10}\.\d{6}$/);
    assert.equal(root.message?.bot_id, FAKE_IDS.bot);
    const reply = await client.chat.postMessage({ channel: CHANNEL, thread_ts: root.ts!, text: 'Looking' });
    assert.ok(Number(reply.ts) > Number(root.ts), 'ts increases');
    assert.equal(reply.message?.thread_ts, root.ts);

    const resolved = [{ type: 'section', text: { type: 'mrkdwn', text: ':white_check_mark: Resolved' } }];
    const updated = await client.chat.update({
      channel: CHANNEL,
      ts: root.ts!,
      text: 'Resolved',
      blocks: resolved,
    });
    assert.equal(updated.ts, root.ts);

    const message = fake.message(CHANNEL, root.ts!)!;
    assert.equal(message.text, 'Resolved');
    assert.deepEqual(message.blocks, resolved);
    assert.deepEqual(
      message.history.map((h) => [h.text, h.blocks]),
      [['Disk full on web-3', blocks]],
    );
    assert.ok(message.edited);
    assert.deepEqual(
      fake.thread(CHANNEL, root.ts!).map((m) => m.text),
      ['Looking'],
    );

    // On the wire: form-urlencoded, Bearer token, blocks JSON-encoded inside the form.
    const call = fake.callsTo('chat.postMessage').find((c) => c.args.text === 'Disk full on web-3')!;
    assert.equal(call.contentType, FORM_TYPE);
    assert.equal(call.token, fake.botToken);
    assert.equal(typeof call.args.blocks, 'string');
    assert.deepEqual(JSON.parse(call.args.blocks as string), blocks);

    await assert.rejects(
      client.chat.update({ channel: CHANNEL, ts: '1600000000.000001', text: 'x' }),
      slackError('message_not_found'),
    );
  });

  it('stores a files.uploadV2 upload: the bytes, the channel, the thread and the comment', async () => {
    const root = await client.chat.postMessage({ channel: CHANNEL, text: 'core dumps on web-3' });
    const before = fake.calls.length;
    const content = 'signal: SIGSEGV\nframes: 12\n';
    const result = await client.files.uploadV2({
      channel_id: CHANNEL,
      thread_ts: root.ts!,
      content,
      filename: 'report.txt',
      title: 'Core report',
      initial_comment: 'Here is what filled the disk',
    });

    assert.deepEqual(
      fake.calls.slice(before).map((c) => c.method),
      ['files.getUploadURLExternal', 'files.completeUploadExternal'],
    );
    const file = fake.files.at(-1)!;
    assert.equal(file.bytes?.toString('utf8'), content);
    assert.equal(file.length, Buffer.byteLength(content));
    assert.equal(file.filename, 'report.txt');
    assert.equal(file.title, 'Core report');
    assert.equal(file.channel_id, CHANNEL);
    assert.equal(file.thread_ts, root.ts);
    assert.equal(file.initial_comment, 'Here is what filled the disk');
    assert.equal(file.completed, true);
    // uploadV2 answers with one completeUploadExternal result per destination.
    const [completion] = (result as { files?: Array<{ files?: Array<{ id?: string }> }> }).files ?? [];
    assert.equal(completion?.files?.[0]?.id, file.id);
  });

  it('rate-limits with 429 + Retry-After: the real WebClient waits, then retries', async () => {
    fake.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    let rateLimitedFor: number | undefined;
    client.once(WebClientEvent.RATE_LIMITED, (seconds: number) => {
      rateLimitedFor = seconds;
    });
    const before = fake.callsTo('chat.postMessage').length;
    const posted = await client.chat.postMessage({ channel: CHANNEL, text: 'after the limit' });
    assert.equal(posted.ok, true);

    const [limited, retried] = fake.callsTo('chat.postMessage').slice(before);
    assert.equal(fake.callsTo('chat.postMessage').length - before, 2, 'recorded twice');
    assert.equal(limited?.status, 429);
    assert.deepEqual(limited?.fault, { status: 429, retryAfter: 1 });
    assert.equal(retried?.status, 200);
    assert.equal(retried?.args.text, 'after the limit');
    assert.ok(retried!.at - limited!.at >= 1000, `waited ${retried!.at - limited!.at} ms`);
    assert.equal(rateLimitedFor, 1);
    assert.equal(fake.messages.get(CHANNEL)?.at(-1)?.text, 'after the limit');
  });

  it('fails a call with ok:false, which the WebClient does not retry', async () => {
    fake.failNext('chat.postMessage', { error: 'channel_not_found' });
    const before = fake.callsTo('chat.postMessage').length;
    await assert.rejects(
      client.chat.postMessage({ channel: 'C0GONE0001', text: 'x' }),
      slackError('channel_not_found'),
    );
    assert.equal(fake.callsTo('chat.postMessage').length - before, 1);
  });

  it('answers HTTP 500, which the WebClient retries like a network error', async () => {
    const quick = new WebClient(fake.botToken, {
      slackApiUrl: fake.apiUrl,
      logger: silent,
      retryConfig: { retries: 1, minTimeout: 10, maxTimeout: 10 },
    });
    const before = fake.callsTo('chat.postMessage').length;
    fake.failNext('chat.postMessage', { status: 500 });
    assert.equal((await quick.chat.postMessage({ channel: CHANNEL, text: 'second try' })).ok, true);
    assert.equal(fake.callsTo('chat.postMessage').length - before, 2);

    fake.failNext('chat.postMessage', { status: 500 }, 2);
    await assert.rejects(quick.chat.postMessage({ channel: CHANNEL, text: 'never' }), (error: unknown) => {
      assert.ok(error instanceof WebAPIHTTPError);
      assert.equal(error.statusCode, 500);
      return true;
    });
  });

  it('names the granted scopes as Slack does, lists channels page by page, and answers missing_scope', async () => {
    const auth = await client.auth.test();
    assert.deepEqual(auth.response_metadata?.scopes, [...DEFAULT_BOT_SCOPES]);
    const names: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.conversations.list({ limit: 1, ...(cursor ? { cursor } : {}) });
      names.push(...(page.channels ?? []).map((c) => c.name!));
      cursor = page.response_metadata?.next_cursor || undefined;
    } while (cursor);
    assert.ok(names.includes('ops'), names.join(','));

    const narrow = await startFakeSlack({ scopes: ['chat:write'] });
    try {
      const narrowClient = new WebClient(narrow.botToken, { slackApiUrl: narrow.apiUrl, logger: silent });
      assert.deepEqual((await narrowClient.auth.test()).response_metadata?.scopes, ['chat:write']);
      await assert.rejects(narrowClient.conversations.info({ channel: CHANNEL }), (error: unknown) => {
        slackError('missing_scope')(error);
        assert.equal(((error as WebAPIPlatformError).data as { needed?: string }).needed, 'channels:read');
        return true;
      });
    } finally {
      await narrow.close();
    }
  });

  it('answers the other methods the bot uses, and unknown_method for the rest', async () => {
    await assert.rejects(client.apiCall('incidents.frobnicate', { id: 1 }), slackError('unknown_method'));
    assert.equal(fake.callsTo('incidents.frobnicate')[0]?.args.id, '1');

    const group = await client.usergroups.users.list({ usergroup: 'S0ONCALL01' });
    assert.deepEqual(group.users, ['U0ALICE001', 'U0BOB00001']);
    await assert.rejects(
      client.usergroups.users.list({ usergroup: 'S0NOPE0001' }),
      slackError('no_such_subteam'),
    );

    const alice = await client.users.info({ user: 'U0ALICE001' });
    assert.equal(alice.user?.name, 'alice');
    assert.equal(alice.user?.tz, 'Europe/Berlin');

    // Not a member: not_in_channel until the bot joins.
    assert.equal((await client.conversations.info({ channel: 'C0PRIVATE1' })).channel?.is_member, false);
    await assert.rejects(
      client.chat.postMessage({ channel: 'C0PRIVATE1', text: 'x' }),
      slackError('not_in_channel'),
    );
    assert.equal((await client.conversations.join({ channel: 'C0PRIVATE1' })).channel?.is_member, true);
    const posted = await client.chat.postMessage({ channel: 'C0PRIVATE1', text: 'now I can' });

    await client.reactions.add({ channel: 'C0PRIVATE1', timestamp: posted.ts!, name: 'eyes' });
    await assert.rejects(
      client.reactions.add({ channel: 'C0PRIVATE1', timestamp: posted.ts!, name: 'eyes' }),
      slackError('already_reacted'),
    );
    assert.deepEqual(fake.message('C0PRIVATE1', posted.ts!)?.reactions, [
      { name: 'eyes', users: [FAKE_IDS.botUser] },
    ]);

    const link = await client.chat.getPermalink({ channel: 'C0PRIVATE1', message_ts: posted.ts! });
    assert.equal(
      link.permalink,
      `https://nightshift-test.slack.com/archives/C0PRIVATE1/p${posted.ts!.replace('.', '')}`,
    );

    const ephemeral = await client.chat.postEphemeral({
      channel: CHANNEL,
      user: 'U0ALICE001',
      text: 'only you',
    });
    assert.deepEqual(
      fake.ephemerals.map((e) => [e.user, e.ts, e.text]),
      [['U0ALICE001', ephemeral.message_ts, 'only you']],
    );

    // A person's message, as a reaction_added handler would look it up.
    const alert = fake.seedMessage('C0ALERTS01', { text: 'DiskFull web-3 /var', user: 'U0ALICE001' });
    const history = await client.conversations.history({
      channel: 'C0ALERTS01',
      latest: alert.ts,
      inclusive: true,
      limit: 1,
    });
    assert.equal(history.messages?.[0]?.text, 'DiskFull web-3 /var');
    await client.chat.postMessage({ channel: 'C0ALERTS01', thread_ts: alert.ts, text: 'on it' });
    const replies = await client.conversations.replies({ channel: 'C0ALERTS01', ts: alert.ts });
    assert.deepEqual(
      replies.messages?.map((m) => m.text),
      ['DiskFull web-3 /var', 'on it'],
    );
  });
});

describe('fake Slack Socket Mode, driven by the real SocketModeClient', () => {
  let fake: FakeSlack;
  let client: SocketModeClient;

  before(async () => {
    fake = await startFakeSlack();
    client = new SocketModeClient({
      appToken: fake.appToken,
      clientOptions: { slackApiUrl: fake.apiUrl },
      logger: silent,
      // Also the reconnect delay: keeps the disconnect test short.
      clientPingTimeout: 600,
    });
  });
  after(async () => {
    await client.disconnect();
    await fake.close();
  });

  it('connects through apps.connections.open with the app token, over ws://, and is greeted', async () => {
    await client.start();
    const [open] = fake.callsTo('apps.connections.open');
    assert.equal(open?.token, fake.appToken);
    assert.match(String(open?.response?.url), /^ws:\/\/127\.0\.0\.1:\d+\/socket\?ticket=/);
    assert.equal(fake.openSockets, 1);
  });

  it('delivers a slash command and returns the ack with its response payload', async () => {
    client.on('slash_commands', async ({ ack, body }) => {
      await ack({ response_type: 'ephemeral', text: `Investigating ${body.text}` });
    });
    const ack = await fake.sendEnvelope('slash_commands', slashCommandPayload({ text: 'web-3' }));
    assert.deepEqual(ack.payload, { response_type: 'ephemeral', text: 'Investigating web-3' });
    assert.equal(ack.type, 'slash_commands');
    const envelope = fake.envelopes.at(-1)!;
    assert.equal(envelope.envelope_id, ack.envelope_id);
    assert.equal(envelope.accepts_response_payload, true);
    assert.deepEqual(fake.acks.at(-1), ack);
  });

  it('delivers an Events API envelope with its retry counters; a bare ack carries {}', async () => {
    let seen: { retry_num?: number; retry_reason?: string; reaction?: string } | undefined;
    client.on('reaction_added', async ({ ack, event, retry_num, retry_reason }) => {
      seen = { retry_num, retry_reason, reaction: event.reaction };
      await ack();
    });
    const event = reactionAddedEvent({
      reaction: 'mag',
      item: { type: 'message', channel: CHANNEL, ts: '1.2' },
    });
    const ack = await fake.sendEnvelope('events_api', eventCallbackPayload(event), {
      retryAttempt: 1,
      retryReason: 'timeout',
    });
    assert.deepEqual(ack.payload, {});
    assert.deepEqual(seen, { retry_num: 1, retry_reason: 'timeout', reaction: 'mag' });
  });

  it('rejects sendEnvelope when the app never acks', async () => {
    const click = blockActionsPayload({ actions: [{ action_id: 'ack_incident', value: '42' }] });
    await assert.rejects(
      fake.sendEnvelope('interactive', click, { timeoutMs: 200 }),
      /no ack for interactive/,
    );
    assert.equal(fake.envelopes.at(-1)?.accepts_response_payload, false);
  });

  it('reconnects with a fresh ticket after a disconnect message', async () => {
    const reconnected = new Promise((resolve) => client.once('connected', resolve));
    fake.sendDisconnect('refresh_requested');
    await reconnected;
    assert.equal(fake.callsTo('apps.connections.open').length, 2);
    assert.equal(fake.socketsOpened, 2);
    await eventually(() => fake.openSockets === 1, 'the old socket to close');
    const ack = await fake.sendEnvelope('slash_commands', slashCommandPayload({ text: 'again' }));
    assert.equal(ack.payload?.text, 'Investigating again');
  });

  it('refuses a wrong app token with invalid_auth, which SocketModeClient treats as fatal', async () => {
    const wrong = new SocketModeClient({
      appToken: 'xapp-1-wrong',
      clientOptions: { slackApiUrl: fake.apiUrl },
      logger: silent,
    });
    await assert.rejects(wrong.start(), slackError('invalid_auth'));
  });
});

describe('a real Bolt app over Socket Mode', () => {
  it('acks a command with its response and acts on an event, through SocketModeReceiver', async () => {
    const fake = await startFakeSlack();
    // As src/slack/app.ts builds it: the receiver's SocketModeClient takes installerOptions.clientOptions.
    const receiver = new SocketModeReceiver({
      appToken: fake.appToken,
      installerOptions: { clientOptions: { slackApiUrl: fake.apiUrl } },
      logger: silent,
    });
    const app = new App({
      token: fake.botToken,
      receiver,
      logger: silent,
      clientOptions: { slackApiUrl: fake.apiUrl },
    });
    app.command('/investigate', async ({ ack, command }) => {
      await ack({ response_type: 'in_channel', text: `Looking at ${command.text}` });
    });
    app.event('app_mention', async ({ event, client }) => {
      await client.chat.postMessage({ channel: event.channel, thread_ts: event.ts, text: 'Here' });
    });
    await app.start();
    try {
      assert.equal(fake.callsTo('apps.connections.open')[0]?.token, fake.appToken);
      const ack = await fake.sendEnvelope('slash_commands', slashCommandPayload({ text: 'db-1' }));
      assert.deepEqual(ack.payload, { response_type: 'in_channel', text: 'Looking at db-1' });

      const mention = appMentionEvent({ text: `<@${FAKE_IDS.botUser}> status`, ts: '1700000001.000100' });
      const eventAck = await fake.sendEnvelope('events_api', eventCallbackPayload(mention));
      assert.deepEqual(eventAck.payload, {});
      await eventually(() => fake.thread(CHANNEL, '1700000001.000100').length === 1, 'the reply');
    } finally {
      await app.stop();
      await fake.close();
    }
  });
});

describe('signed HTTP deliveries', () => {
  const secret = 'fake-signing-secret';

  it('signs as Bolt verifies, with the retry headers Bolt reads', async () => {
    let captured: { req: IncomingMessage; body: string } | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        captured = { req, body: Buffer.concat(chunks).toString('utf8') };
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
      const body = slashCommandBody({ text: 'web-3 /var', channel_id: CHANNEL });
      const res = await signedRequest(url, secret, body, FORM_TYPE, {
        retryNum: 2,
        retryReason: 'http_timeout',
      });
      assert.equal(res.status, 200);
      assert.equal(res.body, 'ok');

      const { req } = captured!;
      assert.equal(captured!.body, body);
      const headers = {
        'x-slack-signature': String(req.headers['x-slack-signature']),
        'x-slack-request-timestamp': Number(req.headers['x-slack-request-timestamp']),
      };
      verifySlackRequest({ signingSecret: secret, body: captured!.body, headers });
      assert.throws(
        () => verifySlackRequest({ signingSecret: secret, body: `${captured!.body}&x=1`, headers }),
        /signature mismatch/,
      );
      assert.throws(
        () => verifySlackRequest({ signingSecret: 'another-secret', body: captured!.body, headers }),
        /signature mismatch/,
      );
      assert.equal(HTTPModuleFunctions.extractRetryNumFromHTTPRequest(req), 2);
      assert.equal(HTTPModuleFunctions.extractRetryReasonFromHTTPRequest(req), 'http_timeout');

      // Bolt's own body parser reads the builders' bodies as Slack's.
      const parse = (raw: string, contentType: string) =>
        HTTPModuleFunctions.parseHTTPRequestBody({
          rawBody: Buffer.from(raw),
          headers: { 'content-type': contentType },
        } as unknown as BufferedIncomingMessage);
      assert.equal(parse(body, FORM_TYPE).text, 'web-3 /var');
      assert.equal(parse(body, FORM_TYPE).command, '/investigate');
      const click = parse(
        blockActionsBody({ actions: [{ action_id: 'ack_incident', value: '7' }] }),
        FORM_TYPE,
      );
      assert.equal(click.type, 'block_actions');
      assert.equal(click.actions[0].value, '7');
      const mention = parse(eventCallbackBody(appMentionEvent({ text: 'hi' })), 'application/json');
      assert.equal(mention.event.type, 'app_mention');
    } finally {
      server.close();
    }
  });

  it('drives a real Bolt app over HTTP: url_verification, a command, a button, an event', async () => {
    const fake = await startFakeSlack();
    const app = new App({
      token: fake.botToken,
      signingSecret: secret,
      clientOptions: { slackApiUrl: fake.apiUrl },
      logger: silent,
    });
    app.command('/investigate', async ({ ack, command, respond }) => {
      await ack({ response_type: 'ephemeral', text: `Looking at ${command.text}` });
      await respond({ text: 'Found 3 core dumps' });
    });
    app.action('ack_incident', async ({ ack, body, client }) => {
      await ack();
      const click = body as { channel?: { id: string }; message?: { ts: string } };
      await client.chat.postMessage({
        channel: click.channel!.id,
        thread_ts: click.message!.ts,
        text: 'Acknowledged',
      });
    });
    app.event('reaction_added', async ({ event, client }) => {
      if (event.item.type !== 'message') return;
      await client.reactions.add({ channel: event.item.channel, timestamp: event.item.ts, name: 'eyes' });
    });
    const server = (await app.start(0)) as import('node:http').Server;
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;

      const challenge = await signedRequest(url, secret, urlVerificationBody('c-123'));
      assert.equal(challenge.status, 200);
      assert.deepEqual(JSON.parse(challenge.body), { challenge: 'c-123' });

      const responseUrl = fake.responseUrl();
      const command = await signedRequest(
        url,
        secret,
        slashCommandBody({ text: 'web-3', response_url: responseUrl }),
      );
      assert.equal(command.status, 200);
      assert.deepEqual(JSON.parse(command.body), { response_type: 'ephemeral', text: 'Looking at web-3' });
      await eventually(() => fake.responses.length === 1, 'respond()');
      assert.deepEqual(fake.responses[0], {
        url: responseUrl,
        body: { text: 'Found 3 core dumps' },
        at: fake.responses[0]!.at,
      });

      const forged = await signedRequest(url, 'not-the-secret', slashCommandBody({ text: 'web-3' }));
      assert.equal(forged.status, 401);
      const stale = await signedRequest(url, secret, slashCommandBody(), FORM_TYPE, {
        timestamp: Math.floor(Date.now() / 1000) - 600,
      });
      assert.equal(stale.status, 401);

      const root = fake.seedMessage(CHANNEL, { text: 'Incident #7', user: FAKE_IDS.botUser });
      const click = await signedRequest(
        url,
        secret,
        blockActionsBody({ actions: [{ action_id: 'ack_incident', value: '7' }], message: { ts: root.ts } }),
      );
      assert.equal(click.status, 200);
      await eventually(() => fake.thread(CHANNEL, root.ts).length === 1, 'the threaded reply');
      assert.equal(fake.thread(CHANNEL, root.ts)[0]?.text, 'Acknowledged');

      const reaction = reactionAddedEvent({
        reaction: 'mag',
        item: { type: 'message', channel: CHANNEL, ts: root.ts },
      });
      const delivered = await signedRequest(url, secret, eventCallbackBody(reaction), 'application/json', {
        retryNum: 1,
        retryReason: 'http_timeout',
      });
      assert.equal(delivered.status, 200);
      await eventually(() => fake.reactions.length === 1, 'reactions.add');
      assert.deepEqual(fake.reactions[0], {
        channel: CHANNEL,
        timestamp: root.ts,
        name: 'eyes',
        user: FAKE_IDS.botUser,
      });
      assert.equal(fake.callsTo('auth.test')[0]?.token, fake.botToken);
    } finally {
      await app.stop();
      await fake.close();
    }
  });
});
