import { z } from 'zod';
import type { NormalizedAlert } from '../alert.ts';
import { AlertmanagerAlertSchema, fromAlertmanagerAlert } from './alertmanager.ts';

/**
 * Grafana alerting's webhook contact point (Grafana 9+): Alertmanager's version 4 payload plus
 * Grafana's fields (orgId, title, state, message; per alert values, dashboard and panel URLs).
 * The envelope and each alert are read separately, as for Alertmanager.
 */
const Labels = z.record(z.string(), z.string());

// Alertmanager's alert, plus what Grafana adds to each.
export const GrafanaAlertSchema = AlertmanagerAlertSchema.extend({
  silenceURL: z.string().optional(),
  dashboardURL: z.string().optional(),
  panelURL: z.string().optional(),
  values: z.record(z.string(), z.number()).nullable().optional(),
  valueString: z.string().optional(),
});

export type GrafanaAlert = z.infer<typeof GrafanaAlertSchema>;

export const GrafanaEnvelopeSchema = z.object({
  receiver: z.string(),
  status: z.enum(['firing', 'resolved']),
  orgId: z.number().int(),
  alerts: z.array(z.unknown()).min(1),
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

export const GrafanaWebhookSchema = GrafanaEnvelopeSchema.extend({
  alerts: z.array(GrafanaAlertSchema).min(1),
});

export type GrafanaWebhook = z.infer<typeof GrafanaWebhookSchema>;

export function fromGrafanaAlert(a: GrafanaAlert): NormalizedAlert {
  const alert = fromAlertmanagerAlert(a, 'grafana');
  // Grafana puts the evaluated query's values beside each alert: the disk's used percent, often.
  if (alert.problem !== 'disk' || alert.usedPercent !== null) return alert;
  const value = Object.values(a.values ?? {})[0];
  return { ...alert, usedPercent: value !== undefined && value >= 0 && value <= 100 ? value : null };
}

export function fromGrafana(payload: GrafanaWebhook): NormalizedAlert[] {
  return payload.alerts.map(fromGrafanaAlert);
}
