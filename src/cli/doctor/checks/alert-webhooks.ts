import type { Check } from '../check.ts';

export const alertWebhooksCheck: Check = async ({ config }) => ({
  part: 'alert webhooks',
  ok: config.ALERT_WEBHOOK_TOKEN ? true : null,
  detail: config.ALERT_WEBHOOK_TOKEN
    ? 'ALERT_WEBHOOK_TOKEN is set'
    : 'off: ALERT_WEBHOOK_TOKEN is not set, webhooks answer 401',
});
