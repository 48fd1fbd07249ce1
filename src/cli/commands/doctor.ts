import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { redact } from '../../analyze/redact.ts';
import type { Policy } from '../../approvals/policy.ts';
import { systemClock } from '../../clock.ts';
import { openSsh, type SshSetup } from '../../collect/ssh-setup.ts';
import type { Config } from '../../config/env.ts';
import { approverCount, loadSettings } from '../../config/settings.ts';
import { asCodedError, StoreLockedError } from '../../errors.ts';
import { createLogger } from '../../log.ts';
import { describeHome, probeCgroup } from '../../runners/cgroup.ts';
import { findExecutable } from '../../runners/evidence-sandbox.ts';
import { sandboxUserStatus, type UserLookup } from '../../runners/sandbox-user.ts';
import { inspectSqlRole } from '../../runners/sql-role.ts';
import { OUTBOX_STUCK_AFTER_S, outboxBacklog } from '../../slack/outbox.ts';
import type { Db } from '../../store/db.ts';
import { loadMigrations } from '../../store/migrate.ts';
import { openStore } from '../../store/open.ts';
import { type CliIo, helpOnly } from '../io.ts';

/**
 * `nightshift doctor`: checks each configured part and says what is wrong in plain words, so the
 * first incident is not where a typo in a token is found.
 */

export const doctorHelp = `Usage: nightshift doctor

Checks the configuration with the code serve reads it with (the environment, the policy file in
NIGHTSHIFT_POLICY and NIGHTSHIFT_APPROVERS; WARN when nobody can approve), the database, Slack
(the bot token, its scopes against manifest.yml, INCIDENT_CHANNEL and the bot's membership
there, Socket Mode's app token), the user evidence scripts run as (NIGHTSHIFT_SANDBOX_USER; WARN
when the bot is root and it is not set), whether a cgroup can bound all of a script's processes
and where (NIGHTSHIFT_SANDBOX_CGROUP), the Anthropic API key, each SSH host in the hosts file,
and the role of each SQL database (NIGHTSHIFT_SQL_DATABASES: not superuser, no replication, no
server files or programs, no CREATE on its search path; it prints the statement that fixes each),
each only when configured. Exit status 0 when everything configured works.
`;

/** The Slack outbox: FAIL while a message has waited longer than OUTBOX_STUCK_AFTER_S, with the last error. */
async function outboxCheck(db: Db): Promise<CheckResult> {
  const part = 'slack outbox';
  const { pending, dead, oldestSeconds: age, lastError: error } = await outboxBacklog(db);
  const deadNote = dead > 0 ? `; ${dead} message(s) given up on (dead)` : '';
  if (age > OUTBOX_STUCK_AFTER_S)
    return {
      part,
      ok: false,
      detail: `stuck: ${pending} message(s) to post, the oldest waiting ${Math.round(age)} s${error ? ` (last error: ${redact(error).text.slice(0, 200)})` : ''}${deadNote}; is the bot running, and can it reach Slack?`,
    };
  return {
    part,
    ok: true,
    detail: `${pending} message(s) to post, none older than ${OUTBOX_STUCK_AFTER_S} s${deadNote}`,
  };
}

/** ok: null is off or not checked; warning marks an ok: null that needs attention (exit status stays 0). */
export type CheckResult = { part: string; ok: boolean | null; detail: string; warning?: true };

type Check = () => Promise<CheckResult | CheckResult[]>;

type SlackAnswer = {
  ok: boolean;
  error?: string;
  /** missing_scope answers name the scope the method needs. */
  needed?: string;
  /** The token's scopes, from the x-oauth-scopes header (the WebClient's response_metadata.scopes). */
  grantedScopes?: string[];
  [k: string]: unknown;
};

async function slackCall(
  apiUrl: string,
  method: string,
  token: string,
  args: Record<string, string> = {},
): Promise<SlackAnswer> {
  const res = await fetch(`${apiUrl}${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(args),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) return { ok: false, error: `HTTP ${res.status}` };
  const answer = (await res.json()) as SlackAnswer;
  const scopes = res.headers.get('x-oauth-scopes');
  if (scopes !== null)
    answer.grantedScopes = scopes
      .trim()
      .split(/\s*,\s*/)
      .filter(Boolean);
  return answer;
}

/** The bot scopes manifest.yml asks for: what an app installed from it is granted. */
async function manifestBotScopes(): Promise<string[]> {
  const manifest = parseYaml(await readFile(new URL('../../../manifest.yml', import.meta.url), 'utf8')) as {
    oauth_config?: { scopes?: { bot?: unknown } };
  };
  const bot = manifest?.oauth_config?.scopes?.bot;
  return Array.isArray(bot) ? bot.map(String) : [];
}

async function scopesCheck(granted: string[] | undefined): Promise<CheckResult> {
  const part = 'slack scopes';
  if (granted === undefined)
    return { part, ok: null, detail: 'Slack did not say which scopes the bot token has (no x-oauth-scopes)' };
  let wanted: string[];
  try {
    wanted = await manifestBotScopes();
  } catch (error) {
    return { part, ok: null, detail: `cannot read manifest.yml to compare: ${(error as Error).message}` };
  }
  const missing = wanted.filter((scope) => !granted.includes(scope));
  return missing.length === 0
    ? { part, ok: true, detail: `the bot token has every scope manifest.yml asks for (${wanted.length})` }
    : {
        part,
        ok: false,
        detail: `the bot token lacks ${missing.join(', ')}, which manifest.yml asks for: add them under OAuth & Permissions (or update the app from manifest.yml), then reinstall the app to the workspace and copy the new bot token`,
      };
}

type SlackChannel = { id: string; name: string; is_member?: boolean; is_archived?: boolean };

/** INCIDENT_CHANNEL (an id, or a name with or without #) exists, is not archived and has the bot in it. */
async function channelCheck(
  apiUrl: string,
  token: string,
  channel: string,
  bot: string,
): Promise<CheckResult> {
  const part = 'slack channel';
  const invite = (name: string) => `type /invite @${bot} in ${name}`;
  const refused = (answer: SlackAnswer, method: string): CheckResult =>
    answer.error === 'missing_scope'
      ? {
          part,
          ok: false,
          detail: `cannot look up INCIDENT_CHANNEL ${channel}: the bot token lacks the ${answer.needed ?? 'channels:read'} scope; add it and reinstall the app`,
        }
      : {
          part,
          ok: false,
          detail: `cannot look up INCIDENT_CHANNEL ${channel}: ${method} failed (${answer.error})`,
        };
  let found: SlackChannel | undefined;
  if (/^[CG][A-Z0-9]{6,}$/.test(channel)) {
    const info = await slackCall(apiUrl, 'conversations.info', token, { channel });
    if (!info.ok && info.error === 'channel_not_found')
      return {
        part,
        ok: false,
        detail: `INCIDENT_CHANNEL ${channel}: Slack knows no such channel, or it is private and the bot is not in it: check the id, or ${invite('that channel')}`,
      };
    if (!info.ok) return refused(info, 'conversations.info');
    found = info.channel as SlackChannel;
  } else {
    const name = channel.replace(/^#/, '');
    let cursor = '';
    for (let page = 0; page < 50 && !found; page++) {
      const list = await slackCall(apiUrl, 'conversations.list', token, {
        types: 'public_channel,private_channel',
        exclude_archived: 'true',
        limit: '1000',
        ...(cursor ? { cursor } : {}),
      });
      if (!list.ok) return refused(list, 'conversations.list');
      found = (list.channels as SlackChannel[] | undefined)?.find((c) => c.name === name);
      cursor = (list.response_metadata as { next_cursor?: string } | undefined)?.next_cursor ?? '';
      if (!cursor) break;
    }
    if (!found)
      return {
        part,
        ok: false,
        detail: `INCIDENT_CHANNEL: the bot sees no channel named #${name}: create it, or if it is private ${invite(`#${name}`)}; or set INCIDENT_CHANNEL to the channel's id (C…, at the bottom of the channel's About tab)`,
      };
  }
  const label = `#${found.name} (${found.id})`;
  if (found.is_archived)
    return {
      part,
      ok: false,
      detail: `${label} is archived: unarchive it or set INCIDENT_CHANNEL to another channel`,
    };
  if (!found.is_member)
    return {
      part,
      ok: false,
      detail: `the bot is not a member of ${label}, so every post there fails with not_in_channel: ${invite(`#${found.name}`)} (or add the app under the channel's Integrations tab)`,
    };
  return { part, ok: true, detail: `${label} exists and the bot is a member` };
}

export interface CheckOptions {
  /** The bot's uid, for the sandbox user check. Default this process's. */
  botUid?: number;
  /** How users are looked up. Default `id`. */
  lookup?: UserLookup;
  /** Where bwrap and prlimit are looked for. Default PATH. */
  searchPath?: string;
  /** Where the cgroup file systems are mounted. Default /sys/fs/cgroup. */
  cgroupRoot?: string;
}

export async function runChecks(
  env: Record<string, string | undefined>,
  options: CheckOptions = {},
): Promise<CheckResult[]> {
  // What serve checks before it starts, with the same code: the environment, the policy file, the
  // approvers. Doctor must not say ok to what serve then refuses.
  let config: Config;
  let policy: Policy;
  try {
    ({ config, policy } = loadSettings(env));
  } catch (error) {
    return [{ part: 'configuration', ok: false, detail: asCodedError(error).message }];
  }
  const approvers = approverCount(policy);
  const checks: Check[] = [
    async () => ({
      part: 'configuration',
      ok: true,
      detail: `every variable that is set is valid${config.NIGHTSHIFT_POLICY ? `, and so is the policy file ${config.NIGHTSHIFT_POLICY}` : ''}`,
    }),
    async () =>
      approvers === 0
        ? {
            part: 'approvers',
            ok: null,
            warning: true,
            detail:
              'nobody can approve: no NIGHTSHIFT_APPROVERS and no approvers in a policy file (NIGHTSHIFT_POLICY), so every proposal can only be rejected or expire',
          }
        : policy.approvers.usergroups.length === 0 && policy.approvers.users.length < policy.approvalsRequired
          ? {
              part: 'approvers',
              ok: null,
              warning: true,
              detail: `nobody can approve: a proposal needs ${policy.approvalsRequired} approvals (approvalsRequired) but only ${policy.approvers.users.length} user(s) may approve`,
            }
          : {
              part: 'approvers',
              ok: true,
              detail: `${policy.approvers.users.length} user(s) and ${policy.approvers.usergroups.length} user group(s) may approve; ${policy.approvalsRequired} approval(s) per proposal`,
            },
    async () => {
      try {
        const db = await openStore(config);
        try {
          await db.executeSql('SELECT 1');
          const { rows } = await db
            .executeSql<{ version: number }>('SELECT max(version) AS version FROM schema_migrations')
            .catch(() => ({ rows: [{ version: 0 }] }));
          const have = Number(rows[0]?.version ?? 0);
          const want = loadMigrations().length;
          const where =
            db.kind === 'pglite' ? `embedded store in ${config.NIGHTSHIFT_DATA_DIR}` : 'PostgreSQL';
          if (have === want) {
            const stuck = await outboxCheck(db);
            if (stuck)
              return [
                {
                  part: 'database',
                  ok: true,
                  detail: `${where} answers; schema ${config.DATABASE_SCHEMA} is up to date`,
                },
                stuck,
              ];
          }
          return have === want
            ? {
                part: 'database',
                ok: true,
                detail: `${where} answers; schema ${config.DATABASE_SCHEMA} is up to date`,
              }
            : {
                part: 'database',
                ok: true,
                detail: `${where} answers; ${want - have} migration(s) to apply (the bot applies them at start, or run nightshift migrate)`,
              };
        } finally {
          await db.close();
        }
      } catch (error) {
        // The bot holds the embedded store while it runs; opening it a second time would corrupt it.
        if (error instanceof StoreLockedError)
          return {
            part: 'database',
            ok: true,
            detail: `embedded store in ${config.NIGHTSHIFT_DATA_DIR} is in use by the running bot (pid ${error.holderPid}); not opened, as a second process would corrupt it`,
          };
        return { part: 'database', ok: false, detail: asCodedError(error).message };
      }
    },
    async () => {
      if (!config.SLACK_BOT_TOKEN)
        return { part: 'slack', ok: null, detail: 'off: SLACK_BOT_TOKEN is not set' };
      const apiUrl = config.SLACK_API_URL ?? 'https://slack.com/api/';
      const results: CheckResult[] = [];
      try {
        const auth = await slackCall(apiUrl, 'auth.test', config.SLACK_BOT_TOKEN);
        results.push(
          auth.ok
            ? {
                part: 'slack',
                ok: true,
                detail: `bot token works: ${String(auth.user)} in ${String(auth.team)}`,
              }
            : {
                part: 'slack',
                ok: false,
                detail: `Slack refused the bot token (${auth.error}): copy it again from the app's OAuth page`,
              },
        );
        if (auth.ok) {
          results.push(await scopesCheck(auth.grantedScopes));
          results.push(
            await channelCheck(apiUrl, config.SLACK_BOT_TOKEN, config.INCIDENT_CHANNEL, String(auth.user)),
          );
        }
        if (config.SLACK_APP_TOKEN) {
          const socket = await slackCall(apiUrl, 'apps.connections.open', config.SLACK_APP_TOKEN);
          results.push(
            socket.ok
              ? { part: 'slack socket mode', ok: true, detail: 'app token opens a Socket Mode connection' }
              : {
                  part: 'slack socket mode',
                  ok: false,
                  detail: `Slack refused the app token (${socket.error}): it needs the connections:write scope`,
                },
          );
        } else if (!config.SLACK_SIGNING_SECRET) {
          results.push({
            part: 'slack http',
            ok: false,
            detail: 'HTTP mode needs SLACK_SIGNING_SECRET to verify requests',
          });
        }
      } catch (error) {
        results.push({
          part: 'slack',
          ok: false,
          detail: `cannot reach Slack at ${apiUrl}: ${(error as Error).message}`,
        });
      }
      return results;
    },
    async () => {
      const status = await sandboxUserStatus({
        spec: config.NIGHTSHIFT_SANDBOX_USER,
        botUid: options.botUid ?? process.getuid?.(),
        evidenceDir: config.NIGHTSHIFT_EVIDENCE_DIR ?? join(config.NIGHTSHIFT_DATA_DIR, 'evidence'),
        ...(options.lookup ? { lookup: options.lookup } : {}),
      });
      const part = 'sandbox user';
      if (status.level === 'warn') return { part, ok: null, warning: true, detail: status.message };
      return { part, ok: status.level === 'ok', detail: status.message };
    },
    // The runner refuses an approved evidence script without these; better heard before an incident.
    async () => {
      const missing = [
        ['bwrap', 'bubblewrap'],
        ['prlimit', 'util-linux'],
      ].filter(([tool]) => !findExecutable(tool!, options.searchPath));
      return missing.length === 0
        ? {
            part: 'sandbox',
            ok: true,
            detail: 'bwrap and prlimit are installed: approved evidence scripts can run',
          }
        : {
            part: 'sandbox',
            ok: false,
            detail: `${missing.map(([tool]) => tool).join(' and ')} not found on PATH: approved evidence scripts would be refused (apt-get install ${missing.map(([, pkg]) => pkg).join(' ')})`,
          };
    },
    // A script is refused too where no cgroup can hold all its processes: one is made and removed.
    async () => {
      const found = await probeCgroup({ root: options.cgroupRoot, parent: config.NIGHTSHIFT_SANDBOX_CGROUP });
      return found.ok
        ? {
            part: 'sandbox limits',
            ok: true,
            detail: `each evidence script gets a cgroup of its own, ${describeHome(found.home)}: ${config.NIGHTSHIFT_SANDBOX_MEMORY_MIB} MiB and ${config.NIGHTSHIFT_SANDBOX_PROCESSES} processes for all its processes together`,
          }
        : {
            part: 'sandbox limits',
            ok: false,
            detail: `no cgroup can bound all of an evidence script's processes, so approved scripts would be refused: ${found.reason}`,
          };
    },
    async () => ({
      part: 'alert webhooks',
      ok: config.ALERT_WEBHOOK_TOKEN ? true : null,
      detail: config.ALERT_WEBHOOK_TOKEN
        ? 'ALERT_WEBHOOK_TOKEN is set'
        : 'off: ALERT_WEBHOOK_TOKEN is not set, webhooks answer 401',
    }),
    async () => {
      if (!config.ANTHROPIC_API_KEY)
        return {
          part: 'anthropic',
          ok: null,
          detail: 'off: ANTHROPIC_API_KEY is not set (the agent is off)',
        };
      const base = (config.ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com').replace(/\/$/, '');
      try {
        const res = await fetch(`${base}/v1/models`, {
          headers: { 'x-api-key': config.ANTHROPIC_API_KEY, 'anthropic-version': '2023-06-01' },
          signal: AbortSignal.timeout(10_000),
        });
        if (res.ok) return { part: 'anthropic', ok: true, detail: 'API key works' };
        return {
          part: 'anthropic',
          ok: false,
          detail:
            res.status === 401
              ? 'the Anthropic API refused the key (401)'
              : `the Anthropic API answered HTTP ${res.status}`,
        };
      } catch (error) {
        return { part: 'anthropic', ok: false, detail: `cannot reach ${base}: ${(error as Error).message}` };
      }
    },
    // The role approved SQL runs as is what the server enforces whatever the gate lets through.
    async () =>
      Promise.all(
        config.sqlDatabases.map(async (database): Promise<CheckResult[]> => {
          const part = `sql ${database.name}`;
          try {
            const { role, problems } = await inspectSqlRole(database);
            const said = (level: 'fail' | 'warn') =>
              problems
                .filter((p) => p.level === level)
                .map((p) => `role ${role} ${p.what}: ${p.fix}`)
                .join('; ');
            const results: CheckResult[] = [];
            if (problems.some((p) => p.level === 'fail'))
              results.push({ part, ok: false, detail: said('fail') });
            else
              results.push({
                part,
                ok: true,
                detail: `role ${role} is no superuser, has no replication, server-file or program rights and cannot create on its search path`,
              });
            if (problems.some((p) => p.level === 'warn'))
              results.push({ part, ok: null, warning: true, detail: said('warn') });
            return results;
          } catch (error) {
            return [{ part, ok: false, detail: `cannot connect: ${(error as Error).message}` }];
          }
        }),
      ).then((all) => all.flat()),
    async () => {
      if (!config.NIGHTSHIFT_HOSTS)
        return { part: 'ssh hosts', ok: null, detail: 'off: NIGHTSHIFT_HOSTS is not set (no collection)' };
      let setup: SshSetup;
      try {
        setup = await openSsh(config.NIGHTSHIFT_HOSTS, {
          log: createLogger({ level: 'silent' }),
          now: systemClock,
          readyTimeoutMs: 8000,
        });
      } catch (error) {
        return { part: 'ssh hosts', ok: false, detail: asCodedError(error).message };
      }
      const { hosts, ssh } = setup;
      try {
        return await Promise.all(
          hosts.hosts.map(async (host): Promise<CheckResult> => {
            try {
              const result = await ssh.host(host.name).exec({
                command: 'command -v docker >/dev/null && echo docker || echo no-docker',
                timeoutMs: 10_000,
                maxOutputBytes: 1024,
              });
              const docker = result.stdout.includes('no-docker') ? ', no docker client' : ', docker found';
              return {
                part: `ssh ${host.name}`,
                ok: true,
                detail: `logged in as ${host.user}, host key pinned${docker}`,
              };
            } catch (error) {
              return { part: `ssh ${host.name}`, ok: false, detail: asCodedError(error).message };
            }
          }),
        );
      } finally {
        await ssh.closeAll();
      }
    },
  ];
  const results: CheckResult[] = [];
  for (const check of checks) results.push(...[await check()].flat());
  return results;
}

export async function doctorCommand(
  args: string[],
  io: CliIo,
  env: Record<string, string | undefined>,
): Promise<number> {
  if (helpOnly(args)) {
    io.stdout.write(doctorHelp);
    return 0;
  }
  const results = await runChecks(env);
  for (const r of results)
    io.stdout.write(
      `${r.warning ? 'WARN' : r.ok === null ? '-' : r.ok ? 'ok' : 'FAIL'}  ${r.part}: ${r.detail}\n`,
    );
  return results.some((r) => r.ok === false) ? 1 : 0;
}
