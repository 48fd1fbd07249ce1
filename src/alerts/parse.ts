import type { z } from 'zod';
import type { NormalizedAlert } from './alert.ts';
import { AlertmanagerWebhookSchema, fromAlertmanager } from './parsers/alertmanager.ts';
import { fromGeneric, GenericAlertSchema, GenericAlertsSchema } from './parsers/generic.ts';
import { fromGrafana, GrafanaWebhookSchema } from './parsers/grafana.ts';

export type AlertSource = NormalizedAlert['source'];

export const ALERT_SOURCES: readonly AlertSource[] = ['alertmanager', 'grafana', 'generic'];

export type ParsedDelivery =
  | { ok: true; payload: unknown; alerts: NormalizedAlert[] }
  | { ok: false; payload: unknown; error: string };

function describe(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(body)'}: ${i.message}`)
    .join('; ');
}

/** Parses a webhook body as received. Pure: the caller stores it whatever the outcome. */
export function parseDelivery(source: AlertSource, body: string): ParsedDelivery {
  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch (error) {
    return { ok: false, payload: null, error: `body is not JSON: ${(error as Error).message}` };
  }
  if (source === 'alertmanager') {
    const r = AlertmanagerWebhookSchema.safeParse(payload);
    return r.success
      ? { ok: true, payload, alerts: fromAlertmanager(r.data) }
      : { ok: false, payload, error: describe(r.error) };
  }
  if (source === 'grafana') {
    const r = GrafanaWebhookSchema.safeParse(payload);
    return r.success
      ? { ok: true, payload, alerts: fromGrafana(r.data) }
      : { ok: false, payload, error: describe(r.error) };
  }
  // One schema or the other, not their union: a union's error says only "Invalid input".
  const schema = Array.isArray(payload) ? GenericAlertsSchema : GenericAlertSchema;
  const r = schema.safeParse(payload);
  return r.success
    ? { ok: true, payload, alerts: fromGeneric(r.data) }
    : { ok: false, payload, error: describe(r.error) };
}
