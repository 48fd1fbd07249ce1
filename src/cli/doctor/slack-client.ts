import { webApi } from '@slack/bolt';
import type { Config } from '../../config/env.ts';
import { createLogger } from '../../log.ts';
import { boltLogger, slackClientOptions } from '../../slack/app.ts';

/** What a Slack method answered, failures included: a check words each failure itself. */
export type SlackAnswer = {
  ok: boolean;
  error?: string;
  /** missing_scope answers name the scope the method needs. */
  needed?: string;
  /** The token's scopes, from the x-oauth-scopes header (the WebClient's response_metadata.scopes). */
  grantedScopes?: string[];
  [k: string]: unknown;
};

export type SlackAsk = (method: string, args?: Record<string, unknown>) => Promise<SlackAnswer>;

/**
 * The Web API client the bot uses (its API URL, its request deadline), asked once per call: doctor
 * says what is wrong now rather than retrying it. Slack's refusals (ok: false, an HTTP status) come
 * back as answers; a Slack that cannot be reached throws.
 */
export function slackAsker(config: Config, token: string): SlackAsk {
  const client = new webApi.WebClient(token, {
    ...slackClientOptions(config),
    retryConfig: { retries: 0 },
    logger: boltLogger(createLogger({ level: 'silent' })),
  });
  return async (method, args = {}) => {
    try {
      const answer = (await client.apiCall(method, args)) as SlackAnswer & {
        response_metadata?: { scopes?: string[] };
      };
      const scopes = answer.response_metadata?.scopes;
      return scopes ? { ...answer, grantedScopes: scopes.filter(Boolean) } : answer;
    } catch (error) {
      const { code, data, statusCode } = error as {
        code?: string;
        data?: SlackAnswer;
        statusCode?: number;
      };
      if (code === webApi.ErrorCode.PlatformError && data) return { ...data, ok: false };
      if (code === webApi.ErrorCode.HTTPError) return { ok: false, error: `HTTP ${statusCode}` };
      throw error;
    }
  };
}
