import pino, { type Logger } from 'pino';
import { redact } from './analyze/redact.ts';

/**
 * The one logger, injected everywhere (never imported as a global). Secrets are removed twice:
 * known secret-bearing fields are censored by path, and every string value goes through the same
 * redact() that guards Slack and the model, so a token inside an error message is hidden too.
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
      hooks: {
        logMethod(args, method) {
          const [first, ...rest] = args;
          if (typeof first === 'string')
            return method.apply(this, [redact(first).text, ...rest] as Parameters<typeof method>);
          if (typeof rest[0] === 'string') {
            return method.apply(this, [first, redact(rest[0]).text, ...rest.slice(1)] as Parameters<
              typeof method
            >);
          }
          return method.apply(this, args);
        },
      },
    },
    options.destination,
  );
}

function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redact(value).text;
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error)
    return {
      type: value.name,
      message: redact(value.message).text,
      stack: value.stack && redact(value.stack).text,
    };
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v, depth + 1)]));
}

export type { Logger };
