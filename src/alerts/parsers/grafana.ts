import { z } from 'zod';
import type { NormalizedAlert } from '../alert.ts';
import { AlertmanagerAlertSchema, fromAlertmanager } from './alertmanager.ts';

/**
 * Grafana alerting's webhook contact point (Grafana 9+): Alertmanager's version 4 payload plus
 * Grafana's fields (orgId, title, state, message; per alert values, dashboard and panel URLs).
 */
const Labels = z.record(z.string(), z.string());

export const GrafanaWebhookSchema = z.object({
  receiver: z.string(),
  status: z.enum(['firing', 'resolved']),
  orgId: z.number().int(),
  alerts: z
    .array(
      // Alertmanager's alert, plus what Grafana adds to each.
      AlertmanagerAlertSchema.extend({
        silenceURL: z.string().optional(),
        dashboardURL: z.string().optional(),
        panelURL: z.string().optional(),
        values: z.record(z.string(), z.number()).nullable().optional(),
        valueString: z.string().optional(),
      }),
    )
    .min(1),
  groupLabels: Labels.default({}),
  commonLabels: Labels.default({}),
  commonAnnotations: Labels.default({}),
  externalURL: z.string().optional(),
  version: z.string(),
  groupKey: z.string(),
  truncatedAlerts: z.number().int().optional(),
  title: z.string().optional(),
  state: z.string().optional(),
  message: z.string().optional(),
});

export type GrafanaWebhook = z.infer<typeof GrafanaWebhookSchema>;

export function fromGrafana(payload: GrafanaWebhook): NormalizedAlert[] {
  const alerts = fromAlertmanager({ ...payload, version: '4' }, 'grafana');
  // Grafana puts the evaluated query's values beside each alert: the disk's used percent, often.
  return alerts.map((alert, i) => {
    const source = payload.alerts[i]!;
    if (alert.problem !== 'disk' || alert.usedPercent !== null) return alert;
    const value = Object.values(source.values ?? {})[0];
    return { ...alert, usedPercent: value !== undefined && value >= 0 && value <= 100 ? value : null };
  });
}
