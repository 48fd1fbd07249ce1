import { z } from 'zod';
import { SLACK_GROUP_ID, SLACK_USER_ID } from '../approvals/policy.ts';
import { CodedError, ErrorCode } from '../errors.ts';
import { parseSqlDatabases, type SqlDatabase } from './sql-databases.ts';

/**
 * The whole configuration, one zod schema over the environment, checked at start. Errors name the
 * variable and say what is wrong with it, never its value (most of these are secrets). Every part
 * is optional where Nightshift can run without it: no Slack tokens, no Slack; no DATABASE_URL, the
 * embedded PGlite store; no ANTHROPIC_API_KEY, the agent is off.
 */

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const url = (what: string) =>
  optionalString.refine((v) => v === undefined || URL.canParse(v), { message: `must be a URL (${what})` });

/** NIGHTSHIFT_SANDBOX_USER: a user name, or a uid with an optional gid (`1500`, `1500:1500`). */
export const SANDBOX_USER_SPEC = /^(?:(?<name>[a-z_][a-z0-9_.-]*\$?)|(?<uid>\d+)(?::(?<gid>\d+))?)$/i;

export const EnvSchema = z.object({
  /** Bot token (xoxb-...), from the app's OAuth page. */
  SLACK_BOT_TOKEN: optionalString.refine((v) => v === undefined || v.startsWith('xoxb-'), {
    message: 'must be a bot token, starting with xoxb-',
  }),
  /** Signing secret, to verify requests to /slack/events (HTTP mode). */
  SLACK_SIGNING_SECRET: optionalString.refine((v) => v === undefined || /^[0-9a-f]{32}$/.test(v), {
    message: 'must be the 32 hex characters of the app signing secret',
  }),
  /** App-level token (xapp-...) with connections:write: set it to use Socket Mode. */
  SLACK_APP_TOKEN: optionalString.refine((v) => v === undefined || v.startsWith('xapp-'), {
    message: 'must be an app-level token, starting with xapp-',
  }),
  /** Slack Web API base URL. Default https://slack.com/api/ (GovSlack: https://slack-gov.com/api/). */
  SLACK_API_URL: url('e.g. https://slack.com/api/'),
  /** Channel for incident threads (name or id). Default #incidents. */
  INCIDENT_CHANNEL: optionalString.transform((v) => v ?? '#incidents'),
  /** Bearer token (or HMAC key) alert webhooks must present. At least 16 characters. */
  ALERT_WEBHOOK_TOKEN: optionalString.refine((v) => v === undefined || v.length >= 16, {
    message: 'must be at least 16 characters',
  }),
  /** PostgreSQL server. Unset: the embedded PGlite store in NIGHTSHIFT_DATA_DIR. */
  DATABASE_URL: optionalString.refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), {
    message: 'must be a postgres:// or postgresql:// URL',
  }),
  /** Schema for Nightshift's tables. Default nightshift. */
  DATABASE_SCHEMA: optionalString
    .transform((v) => v ?? 'nightshift')
    .refine((v) => /^[a-z_][a-z0-9_]{0,62}$/.test(v), { message: 'must be a lower-case identifier' }),
  /** Data directory of the embedded store (and evidence). Default ./.nightshift/data. */
  NIGHTSHIFT_DATA_DIR: optionalString.transform((v) => v ?? '.nightshift/data'),
  /** Hosts file (YAML or JSON) for collection over SSH; see config/hosts.ts. */
  NIGHTSHIFT_HOSTS: optionalString,
  /** Policy file (YAML or JSON): approvers, two approvers, self-approval, expiry, automatic pulls. */
  NIGHTSHIFT_POLICY: optionalString,
  /** Slack user ids (U…) and user group ids (S…) who may approve, comma-separated. Unset: nobody. */
  NIGHTSHIFT_APPROVERS: optionalString.superRefine((v, ctx) => {
    // Ids, not secrets: the one that is neither a user nor a group is named, so it can be found.
    for (const id of (v ?? '').split(/[\s,]+/).filter(Boolean))
      if (!SLACK_USER_ID.test(id) && !SLACK_GROUP_ID.test(id))
        ctx.addIssue({
          code: 'custom',
          message: `"${id.slice(0, 40)}" is neither a Slack user id (U…) nor a user group id (S…); names such as @bob do not work, use the member id from the profile's ⋮ menu`,
        });
  }),
  /** Where pulled evidence is kept on the bot host. Default NIGHTSHIFT_DATA_DIR/evidence. */
  NIGHTSHIFT_EVIDENCE_DIR: optionalString,
  /** Days pulled evidence is kept after it arrived. Default 14. */
  NIGHTSHIFT_EVIDENCE_DAYS: optionalString
    .transform((v) => (v === undefined ? 14 : Number(v)))
    .refine((v) => Number.isInteger(v) && v >= 1 && v <= 3650, {
      message: 'must be a whole number of days, 1-3650',
    }),
  /**
   * User that approved evidence scripts run as: a name or uid[:gid], resolved at start (it must
   * exist, and not be root). Unset: the bot's own user (a bot running as root is warned).
   */
  NIGHTSHIFT_SANDBOX_USER: optionalString.refine((v) => v === undefined || SANDBOX_USER_SPEC.test(v), {
    message: 'must be a user name or uid[:gid]',
  }),
  /**
   * Memory all of an evidence script's processes may hold together, in MiB (the run's cgroup; each
   * process is also held to 1 GiB of address space). Default 1024.
   */
  NIGHTSHIFT_SANDBOX_MEMORY_MIB: optionalString
    .transform((v) => (v === undefined ? 1024 : Number(v)))
    .refine((v) => Number.isInteger(v) && v >= 16 && v <= 1_048_576, {
      message: 'must be a whole number of MiB, 16-1048576',
    }),
  /** Processes and threads an evidence script may have at once (the run's cgroup). Default 128. */
  NIGHTSHIFT_SANDBOX_PROCESSES: optionalString
    .transform((v) => (v === undefined ? 128 : Number(v)))
    .refine((v) => Number.isInteger(v) && v >= 8 && v <= 100_000, {
      message: 'must be a whole number of processes, 8-100000',
    }),
  /**
   * The cgroup (a path such as /nightshift, in each cgroup hierarchy) under which each evidence
   * script gets a cgroup of its own. Unset: the bot's own cgroup.
   */
  NIGHTSHIFT_SANDBOX_CGROUP: optionalString.refine(
    (v) => v === undefined || (v.startsWith('/') && !v.split('/').includes('..')),
    { message: 'must be an absolute cgroup path, such as /nightshift, without ..' },
  ),
  /**
   * Databases SQL proposals may run against, comma-separated names; each one's URL is in
   * NIGHTSHIFT_SQL_<NAME>_URL (see config/sql-databases.ts). Unset: no SQL runs.
   */
  NIGHTSHIFT_SQL_DATABASES: optionalString,
  /** Anthropic API key: unset, the agent is off and everything else works. */
  ANTHROPIC_API_KEY: optionalString,
  /** Anthropic API base URL (a proxy, or a fake in tests). */
  ANTHROPIC_BASE_URL: url('e.g. https://api.anthropic.com'),
  /** Model the agent uses. Default claude-sonnet-4-5. */
  ANTHROPIC_MODEL: optionalString.transform((v) => v ?? 'claude-sonnet-4-5'),
  /** Model calls (turns) the agent may make per incident. Default 20. */
  AGENT_MAX_TURNS: optionalString
    .transform((v) => (v === undefined ? 20 : Number(v)))
    .refine((v) => Number.isInteger(v) && v >= 1 && v <= 1000, {
      message: 'must be a whole number of turns, 1-1000',
    }),
  /** Tokens (input, output and cache, summed) the agent may use per incident. Default 200000. */
  AGENT_MAX_TOKENS: optionalString
    .transform((v) => (v === undefined ? 200_000 : Number(v)))
    .refine((v) => Number.isInteger(v) && v >= 1000 && v <= 100_000_000, {
      message: 'must be a whole number of tokens, 1000-100000000',
    }),
  /** HTTP port for Slack events, alert webhooks, health and metrics. Default 3000. */
  PORT: optionalString
    .transform((v) => (v === undefined ? 3000 : Number(v)))
    .refine((v) => Number.isInteger(v) && v >= 1 && v <= 65535, {
      message: 'must be a port number, 1-65535',
    }),
  /** pino level: fatal, error, warn, info, debug, trace. Default info. */
  LOG_LEVEL: optionalString
    .transform((v) => v ?? 'info')
    .refine((v) => ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(v), {
      message: 'must be one of fatal, error, warn, info, debug, trace, silent',
    }),
});

export type Config = z.output<typeof EnvSchema> & {
  /** The databases of NIGHTSHIFT_SQL_DATABASES with their URLs (never printed). */
  sqlDatabases: SqlDatabase[];
};

/** Parses the environment; throws ConfigInvalid listing every variable that is wrong. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const result = EnvSchema.safeParse(env);
  const sql = parseSqlDatabases(env);
  if (result.success && sql.problems.length === 0) {
    const config = { ...result.data, sqlDatabases: sql.databases };
    if (config.SLACK_APP_TOKEN && !config.SLACK_BOT_TOKEN) {
      throw new CodedError(
        ErrorCode.ConfigInvalid,
        'SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not: Socket Mode needs both',
      );
    }
    if (config.SLACK_BOT_TOKEN && !config.SLACK_APP_TOKEN && !config.SLACK_SIGNING_SECRET) {
      throw new CodedError(
        ErrorCode.ConfigInvalid,
        'SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN (Socket Mode) is',
      );
    }
    return config;
  }
  const lines = [
    ...(result.success ? [] : result.error.issues).map(
      (issue) => `${issue.path.join('.')}: ${issue.message}`,
    ),
    ...sql.problems,
  ];
  throw new CodedError(ErrorCode.ConfigInvalid, `configuration is not valid:\n  ${lines.join('\n  ')}`);
}
