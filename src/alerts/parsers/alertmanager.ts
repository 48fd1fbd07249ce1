import { z } from 'zod';
import { hostFromLabels, isDiskAlert, type NormalizedAlert, parseUsedPercent, severityOf } from '../alert.ts';

/**
 * Alertmanager's webhook (payload version 4), as documented in its configuration reference:
 * a group of alerts with their labels, annotations, times and fingerprints. The envelope and each
 * alert are read separately, so one malformed alert does not cost the others of its group.
 */
const Labels = z.record(z.string(), z.string());

export const AlertmanagerAlertSchema = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: Labels,
  annotations: Labels.default({}),
  startsAt: z.string().optional(),
  endsAt: z.string().optional(),
  generatorURL: z.string().optional(),
  fingerprint: z.string().min(1),
});

export type AlertmanagerAlert = z.infer<typeof AlertmanagerAlertSchema>;

/** The group around the alerts; each alert is checked on its own with AlertmanagerAlertSchema. */
export const AlertmanagerEnvelopeSchema = z.object({
  version: z.literal('4', { message: 'only Alertmanager webhook payload version 4 is understood' }),
  groupKey: z.string(),
  truncatedAlerts: z.number().int().optional(),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string(),
  groupLabels: Labels.default({}),
  commonLabels: Labels.default({}),
  commonAnnotations: Labels.default({}),
  externalURL: z.string().optional(),
  alerts: z.array(z.unknown()).min(1),
});

export const AlertmanagerWebhookSchema = AlertmanagerEnvelopeSchema.extend({
  alerts: z.array(AlertmanagerAlertSchema).min(1),
});

export type AlertmanagerWebhook = z.infer<typeof AlertmanagerWebhookSchema>;

/** Zero times ("0001-01-01T00:00:00Z") mean "not set" in Alertmanager. */
function time(value: string | undefined): string | null {
  return value && !value.startsWith('0001-') ? value : null;
}

export function fromAlertmanagerAlert(
  a: AlertmanagerAlert,
  source: NormalizedAlert['source'] = 'alertmanager',
): NormalizedAlert {
  const name = a.labels.alertname ?? 'alert';
  const summary = a.annotations.summary ?? a.annotations.description ?? a.annotations.message ?? name;
  const disk = isDiskAlert(name, a.labels, `${a.generatorURL ?? ''} ${a.annotations.description ?? ''}`);
  return {
    source,
    fingerprint: a.fingerprint,
    status: a.status,
    name,
    host: hostFromLabels(a.labels),
    problem: disk ? 'disk' : name,
    summary,
    severity: severityOf(a.labels.severity),
    labels: a.labels,
    startsAt: time(a.startsAt),
    endsAt: time(a.endsAt),
    mount: a.labels.mountpoint ?? null,
    usedPercent: disk ? parseUsedPercent(a.annotations.description ?? a.annotations.summary ?? '') : null,
  };
}

export function fromAlertmanager(
  payload: AlertmanagerWebhook,
  source: NormalizedAlert['source'] = 'alertmanager',
): NormalizedAlert[] {
  return payload.alerts.map((a) => fromAlertmanagerAlert(a, source));
}
