import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseKnownHosts } from '../../collect/known-hosts.ts';
import { SshConnections } from '../../collect/ssh.ts';
import { loadConfig } from '../../config/env.ts';
import { type HostsFile, loadHostsFile } from '../../config/hosts.ts';
import { asCodedError } from '../../errors.ts';
import { createLogger } from '../../log.ts';
import { loadMigrations } from '../../store/migrate.ts';
import { openStore } from '../../store/open.ts';
import { type CliIo, helpOnly } from '../io.ts';

/**
 * `nightshift doctor`: checks each configured part and says what is wrong in plain words, so the
 * first incident is not where a typo in a token is found.
 */

export const doctorHelp = `Usage: nightshift doctor

Checks the configuration, the database, Slack (auth.test, and Socket Mode's app token), the
Anthropic API key and each SSH host in the hosts file, each only when configured. Exit status 0 when everything configured works.
`;

export type CheckResult = { part: string; ok: boolean | null; detail: string };

type Check = () => Promise<CheckResult | CheckResult[]>;

async function slackCall(
  apiUrl: string,
  method: string,
  token: string,
): Promise<{ ok: boolean; error?: string; [k: string]: unknown }> {
  const res = await fetch(`${apiUrl}${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) return { ok: false, error: `HTTP ${res.status}` };
  return (await res.json()) as { ok: boolean; error?: string };
}

export async function runChecks(env: Record<string, string | undefined>): Promise<CheckResult[]> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env);
  } catch (error) {
    return [{ part: 'configuration', ok: false, detail: asCodedError(error).message }];
  }
  const checks: Check[] = [
    async () => ({ part: 'configuration', ok: true, detail: 'every variable that is set is valid' }),
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
    async () => {
      if (!config.NIGHTSHIFT_HOSTS)
        return { part: 'ssh hosts', ok: null, detail: 'off: NIGHTSHIFT_HOSTS is not set (no collection)' };
      let hosts: HostsFile;
      try {
        hosts = loadHostsFile(config.NIGHTSHIFT_HOSTS);
      } catch (error) {
        return { part: 'ssh hosts', ok: false, detail: asCodedError(error).message };
      }
      const knownHostsPath = hosts.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
      const knownHosts = parseKnownHosts(await readFile(knownHostsPath, 'utf8').catch(() => ''));
      const ssh = new SshConnections({
        hosts,
        knownHosts,
        log: createLogger({ level: 'silent' }),
        readyTimeoutMs: 8000,
      });
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
    io.stdout.write(`${r.ok === null ? '-' : r.ok ? 'ok' : 'FAIL'}  ${r.part}: ${r.detail}\n`);
  return results.some((r) => r.ok === false) ? 1 : 0;
}
