import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../src/log.ts';

/**
 * The logger is the one way out for everything the bot logs: no secret may reach its output,
 * whether it sits in a field named like a secret, in a header, in a URL, in an error message or in
 * a format argument. Each case logs through a real pino logger into a captured stream.
 */
const SECRETS = {
  SLACK_BOT_TOKEN: 'xoxb-1111111111-2222222222-AbCdEfGhIjKlMnOpQrStUvWx',
  SLACK_APP_TOKEN: 'xapp-1-A0FAKE-3333333333-abcdef0123456789',
  SLACK_SIGNING_SECRET: '8f14e45fceea167a5a36dedd4bea2543',
  // A webhook token has no telling shape: only its name says it is a secret.
  ALERT_WEBHOOK_TOKEN: 'wh-4f9a1c2e7b3d5a60c8e1',
  ANTHROPIC_API_KEY: 'sk-ant-api03-ZmFrZS1rZXktZm9yLXRlc3Rz-abcdefghij',
  DATABASE_PASSWORD: 's3cr3t-pa55word-77',
  bearer: 'b1e2a3r4e5r6t7o8k9e0n',
  cookie: 'c00k1e-5e55i0n-v4lue',
  slackInError: 'xoxb-9999999999-8888888888-ZyXwVuTsRqPoNmLkJiHgFeDc',
  awsKey: 'AKIAIOSFODNN7EXAMPLE',
};
const DATABASE_URL = `postgres://nightshift:${SECRETS.DATABASE_PASSWORD}@db.internal:5432/nightshift`;

function captured(): { log: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return {
    log: createLogger({ level: 'debug', destination }),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

function assertNoSecret(output: string) {
  for (const [name, value] of Object.entries(SECRETS))
    assert.ok(!output.includes(value), `${name} leaked into the log: ${output}`);
}

const errorWithSecrets = () =>
  new Error(`Slack refused ${SECRETS.slackInError}; retried with AWS key ${SECRETS.awsKey}`);

describe('the logger', () => {
  it('censors a config object by field name, whatever the value looks like', () => {
    const { log, lines } = captured();
    const config = {
      SLACK_BOT_TOKEN: SECRETS.SLACK_BOT_TOKEN,
      SLACK_APP_TOKEN: SECRETS.SLACK_APP_TOKEN,
      SLACK_SIGNING_SECRET: SECRETS.SLACK_SIGNING_SECRET,
      ALERT_WEBHOOK_TOKEN: SECRETS.ALERT_WEBHOOK_TOKEN,
      ANTHROPIC_API_KEY: SECRETS.ANTHROPIC_API_KEY,
      DATABASE_URL,
      INCIDENT_CHANNEL: 'C0INCIDENTS',
      PORT: 3000,
    };
    log.info({ config }, 'config loaded');
    // The same fields at the top level, as a careless log.info(env) would write them.
    log.info(config, 'environment');
    const [nested, flat] = lines();
    assertNoSecret(JSON.stringify(lines()));
    for (const entry of [(nested as { config: typeof config }).config, flat as typeof config]) {
      assert.equal(entry.SLACK_BOT_TOKEN, '[REDACTED]');
      assert.equal(entry.ALERT_WEBHOOK_TOKEN, '[REDACTED]');
      assert.equal(entry.SLACK_SIGNING_SECRET, '[REDACTED]');
      assert.equal(entry.ANTHROPIC_API_KEY, '[REDACTED]');
      assert.match(entry.DATABASE_URL, /\[REDACTED\]/);
      // What is not secret stays readable.
      assert.equal(entry.INCIDENT_CHANNEL, 'C0INCIDENTS');
      assert.equal(entry.PORT, 3000);
    }
    assert.match(
      flat!.DATABASE_URL as string,
      /^postgres:\/\/nightshift:\[REDACTED\]@db\.internal:5432\/nightshift$/,
    );
  });

  it('censors authorization headers and cookies, however the header is spelled', () => {
    const { log, lines } = captured();
    log.info(
      {
        req: {
          method: 'POST',
          url: '/alerts/alertmanager',
          headers: { authorization: `Bearer ${SECRETS.bearer}`, cookie: `session=${SECRETS.cookie}` },
        },
      },
      'request',
    );
    log.info({ headers: { Authorization: SECRETS.bearer, 'x-api-key': SECRETS.ANTHROPIC_API_KEY } }, 'fetch');
    const output = JSON.stringify(lines());
    assertNoSecret(output);
    const [request, fetched] = lines() as Array<{ req?: { url: string; headers: object }; headers?: object }>;
    assert.equal(request!.req!.url, '/alerts/alertmanager');
    assert.deepEqual(request!.req!.headers, { authorization: '[REDACTED]', cookie: '[REDACTED]' });
    assert.deepEqual(fetched!.headers, { Authorization: '[REDACTED]', 'x-api-key': '[REDACTED]' });
  });

  it('redacts tokens and keys inside an error, logged every way pino takes one', () => {
    const { log, lines } = captured();
    log.error({ err: errorWithSecrets() }, 'posting failed');
    log.error({ err: errorWithSecrets() });
    log.error(errorWithSecrets());
    log.error(errorWithSecrets(), 'posting failed');
    log.warn('posting failed: %s', errorWithSecrets().message);
    log.child({ component: 'outbox' }).error({ err: errorWithSecrets() });
    const entries = lines() as Array<{ msg?: string; err?: { message: string; stack: string } }>;
    assert.equal(entries.length, 6);
    assertNoSecret(JSON.stringify(entries));
    for (const entry of entries) {
      const text = `${entry.msg ?? ''} ${entry.err?.message ?? ''}`;
      assert.match(text, /Slack refused xox-\[REDACTED\]; retried with AWS key \[REDACTED\]/);
    }
    for (const entry of entries.filter((e) => e.err)) {
      assert.equal((entry.err as { type?: string }).type, 'Error');
      assert.match(entry.err!.stack, /xox-\[REDACTED\]/);
    }
  });

  it('redacts a secret in the message string itself', () => {
    const { log, lines } = captured();
    log.info(`connecting to ${DATABASE_URL}`);
    log.info({ attempt: 2 }, `connecting to ${DATABASE_URL}`);
    log.info('connecting to %s as %s', DATABASE_URL, SECRETS.SLACK_BOT_TOKEN);
    assertNoSecret(JSON.stringify(lines()));
    for (const entry of lines()) assert.match(entry.msg as string, /nightshift:\[REDACTED\]@db\.internal/);
  });

  it('redacts deep inside nested objects too', () => {
    const { log, lines } = captured();
    const deep = {
      a: { b: { c: { d: { e: { f: { ALERT_WEBHOOK_TOKEN: SECRETS.ALERT_WEBHOOK_TOKEN } } } } } },
    };
    log.info({ deep, url: DATABASE_URL }, 'deep');
    const output = JSON.stringify(lines());
    assertNoSecret(output);
    assert.match(output, /REDACTED/);
  });
});
