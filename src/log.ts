import pino, { type Logger } from 'pino';
import { redact } from './analyze/redact.ts';

/**
 * The one logger, injected everywhere (never imported as a global). Secrets are removed three
 * ways: known secret-bearing fields are censored by path; any field named like a secret
 * (SECRET_FIELD) is censored wherever it sits, since a webhook token or a signing secret has no
 * telling shape; and every other string goes through the same redact() that guards Slack and the
 * model, so a token inside an error message, a format argument or a URL is hidden too. The message
 * pino takes from an error logged without one is redacted as well.
 */
export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'nightshift' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["x-slack-signature"]',
          'headers.authorization',
          'token',
          'password',
          'config.SLACK_BOT_TOKEN',
          'config.SLACK_SIGNING_SECRET',
          'config.SLACK_APP_TOKEN',
          'config.ANTHROPIC_API_KEY',
          'config.ALERT_WEBHOOK_TOKEN',
          'config.DATABASE_URL',
        ],
        censor: '[REDACTED]',
      },
      formatters: {
        log(object) {
          return scrub(object) as Record<string, unknown>;
        },
      },
      // Errors are serialized (causes included) and redacted in scrub(); pino must not redo it.
      serializers: { err: (value: unknown) => value },
      hooks: {
        logMethod(args, method) {
          const clean = args.map((arg) => (typeof arg === 'string' ? redact(arg).text : arg));
          const [first] = clean;
          // Without a message, pino writes the error's own message, unredacted: give it the redacted one.
          if (
            first !== null &&
            typeof first === 'object' &&
            !clean.slice(1).some((a) => typeof a === 'string')
          ) {
            const error = first instanceof Error ? first : (first as { err?: unknown }).err;
            const message = (error as { message?: unknown } | undefined)?.message;
            if (typeof message === 'string' && (first as { msg?: unknown }).msg === undefined)
              clean.splice(1, 0, redact(message).text);
          }
          return method.apply(this, clean as Parameters<typeof method>);
        },
      },
    },
    options.destination,
  );
}

/**
 * Field names whose values are secrets whatever they look like: *TOKEN, *SECRET, *PASSWORD, API
 * and private keys, credentials, authorization headers, cookies, request signatures. Narrower than
 * redact()'s SECRET_NAME on purpose: `dedupKey` or `input_tokens` are not secrets.
 */
const SECRET_FIELD =
  /(?:token|secret|pass(?:word|wd|phrase)|^pass|api[-_]?key|private[-_]?key|access[-_]?key|credentials?|authorization|cookie|-signature)$/i;

function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redact(value).text;
  if (value === null || typeof value !== 'object') return value;
  // Deeper than this, the value is written as redacted JSON text rather than walked on.
  if (depth > 4) {
    try {
      return redact(JSON.stringify(value)).text;
    } catch {
      return '[unserializable]';
    }
  }
  if (value instanceof Error) {
    // pino's own serializer, for the causes' messages and stacks and fields such as `code`; its
    // result is a plain object, scrubbed like any other. `type` keeps the class name.
    const { type, ...rest } = pino.stdSerializers.err(value) as unknown as Record<string, unknown>;
    return { type, ...(scrub(rest, depth) as object) };
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      SECRET_FIELD.test(k) && v !== undefined && v !== null && typeof v !== 'boolean'
        ? '[REDACTED]'
        : scrub(v, depth + 1),
    ]),
  );
}

export type { Logger };
