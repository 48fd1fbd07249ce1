import type { Config } from '../../../config/env.ts';
import type { Check, CheckResult } from '../check.ts';
import { slackAsker } from '../slack-client.ts';
import { slackChannelCheck } from './slack-channel.ts';
import { slackScopesCheck } from './slack-scopes.ts';

/** The bot token (then its scopes and INCIDENT_CHANNEL), and Socket Mode's app token or HTTP's signing secret. */
export const slackCheck: Check = async ({ config }) => {
  if (!config.SLACK_BOT_TOKEN) return { part: 'slack', ok: null, detail: 'off: SLACK_BOT_TOKEN is not set' };
  const results: CheckResult[] = [];
  try {
    const ask = slackAsker(config, config.SLACK_BOT_TOKEN);
    const auth = await ask('auth.test');
    results.push(
      auth.ok
        ? { part: 'slack', ok: true, detail: `bot token works: ${String(auth.user)} in ${String(auth.team)}` }
        : {
            part: 'slack',
            ok: false,
            detail: `Slack refused the bot token (${auth.error}): copy it again from the app's OAuth page`,
          },
    );
    if (auth.ok) {
      results.push(await slackScopesCheck(auth.grantedScopes));
      results.push(await slackChannelCheck(ask, config.INCIDENT_CHANNEL, String(auth.user)));
    }
    const transport = await transportCheck(config);
    if (transport) results.push(transport);
  } catch (error) {
    const apiUrl = config.SLACK_API_URL ?? 'https://slack.com/api/';
    results.push({
      part: 'slack',
      ok: false,
      detail: `cannot reach Slack at ${apiUrl}: ${(error as Error).message}`,
    });
  }
  return results;
};

/** Socket Mode: the app token opens a connection. HTTP: the signing secret is set. */
async function transportCheck(config: Config): Promise<CheckResult | undefined> {
  if (config.SLACK_APP_TOKEN) {
    const socket = await slackAsker(config, config.SLACK_APP_TOKEN)('apps.connections.open');
    return socket.ok
      ? { part: 'slack socket mode', ok: true, detail: 'app token opens a Socket Mode connection' }
      : {
          part: 'slack socket mode',
          ok: false,
          detail: `Slack refused the app token (${socket.error}): it needs the connections:write scope`,
        };
  }
  if (!config.SLACK_SIGNING_SECRET)
    return {
      part: 'slack http',
      ok: false,
      detail: 'HTTP mode needs SLACK_SIGNING_SECRET to verify requests',
    };
  return undefined;
}
