import { anthropicSdk, apiErrorStatus } from '../../../agent/client.ts';
import type { Check } from '../check.ts';

/** The API key works: the SDK the agent uses lists the models once (no retries, 10 s). */
export const anthropicCheck: Check = async ({ config }) => {
  const part = 'anthropic';
  if (!config.ANTHROPIC_API_KEY)
    return { part, ok: null, detail: 'off: ANTHROPIC_API_KEY is not set (the agent is off)' };
  const base = (config.ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com').replace(/\/$/, '');
  const sdk = anthropicSdk({
    apiKey: config.ANTHROPIC_API_KEY,
    baseURL: base,
    maxRetries: 0,
    timeoutMs: 10_000,
  });
  try {
    await sdk.models.list();
    return { part, ok: true, detail: 'API key works' };
  } catch (error) {
    const status = apiErrorStatus(error);
    if (status === undefined)
      return { part, ok: false, detail: `cannot reach ${base}: ${(error as Error).message}` };
    return {
      part,
      ok: false,
      detail:
        status === 401
          ? 'the Anthropic API refused the key (401)'
          : `the Anthropic API answered HTTP ${status}`,
    };
  }
};
