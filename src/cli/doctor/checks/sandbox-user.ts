import { join } from 'node:path';
import { sandboxUserStatus } from '../../../runners/sandbox-user.ts';
import type { Check } from '../check.ts';

/** The user evidence scripts run as (NIGHTSHIFT_SANDBOX_USER), checked as serve checks it at start. */
export const sandboxUserCheck: Check = async ({ config, options }) => {
  const status = await sandboxUserStatus({
    spec: config.NIGHTSHIFT_SANDBOX_USER,
    botUid: options.botUid ?? process.getuid?.(),
    evidenceDir: config.NIGHTSHIFT_EVIDENCE_DIR ?? join(config.NIGHTSHIFT_DATA_DIR, 'evidence'),
    ...(options.lookup ? { lookup: options.lookup } : {}),
  });
  const part = 'sandbox user';
  if (status.level === 'warn') return { part, ok: null, warning: true, detail: status.message };
  return { part, ok: status.level === 'ok', detail: status.message };
};
