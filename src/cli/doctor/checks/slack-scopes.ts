import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { CheckResult } from '../check.ts';

/** The bot scopes manifest.yml asks for: what an app installed from it is granted. */
async function manifestBotScopes(): Promise<string[]> {
  const manifest = parseYaml(
    await readFile(new URL('../../../../manifest.yml', import.meta.url), 'utf8'),
  ) as { oauth_config?: { scopes?: { bot?: unknown } } };
  const bot = manifest?.oauth_config?.scopes?.bot;
  return Array.isArray(bot) ? bot.map(String) : [];
}

/** The bot token has every scope manifest.yml asks for (granted: what auth.test said it has). */
export async function slackScopesCheck(granted: string[] | undefined): Promise<CheckResult> {
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
