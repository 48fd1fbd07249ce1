import type { z } from 'zod';
import type { NormalizedAlert } from './alert.ts';
import type { StoredAlertLinks } from './links.ts';
import type { AlertSource } from './parse.ts';
import { AlertmanagerAlertSchema, fromAlertmanagerAlert } from './parsers/alertmanager.ts';
import { fromGenericAlert, GenericAlertSchema } from './parsers/generic.ts';
import { fromGrafanaAlert, GrafanaAlertSchema } from './parsers/grafana.ts';

/**
 * Reading alerts as stored (alerts.payload), pure: rows stored before migration 9 hold their whole
 * delivery (the alert among its `alerts`), later rows the alert alone, as its schema read it. What
 * an alert says (its mount, its used percent) is what the intake's normalizer made of it, read
 * again by the same normalizer: the root shows what the intake grouped by, not a second reading.
 */

function normalizer<T>(schema: z.ZodType<T>, normalize: (alert: T) => NormalizedAlert) {
  return (item: unknown): NormalizedAlert | undefined => {
    const read = schema.safeParse(item);
    return read.success ? normalize(read.data) : undefined;
  };
}

const NORMALIZERS: Record<AlertSource, (item: unknown) => NormalizedAlert | undefined> = {
  alertmanager: normalizer(AlertmanagerAlertSchema, (a) => fromAlertmanagerAlert(a)),
  grafana: normalizer(GrafanaAlertSchema, fromGrafanaAlert),
  generic: normalizer(GenericAlertSchema, fromGenericAlert),
};

/**
 * The alert with this fingerprint, normalized, from its stored payload; undefined when the payload
 * no longer reads as its source's alert (a row older than the schema).
 */
export function storedAlert(
  source: AlertSource,
  payload: unknown,
  fingerprint: string,
): NormalizedAlert | undefined {
  const delivery = payload as { alerts?: unknown } | null;
  const items = Array.isArray(delivery?.alerts)
    ? delivery.alerts
    : Array.isArray(payload)
      ? payload
      : [payload];
  // A row of one alert is that alert; a delivery's holds it among others.
  if (items.length === 1) return NORMALIZERS[source](items[0]);
  for (const item of items) {
    const alert = NORMALIZERS[source](item);
    if (alert?.fingerprint === fingerprint) return alert;
  }
  return undefined;
}

/** What the links of an alert as stored are read from: the alert, and its delivery's externalURL. */
export function storedLinks(payload: unknown): StoredAlertLinks | undefined {
  const stored = payload as (StoredAlertLinks & { alerts?: StoredAlertLinks[] }) | undefined;
  return stored?.alerts ? { ...stored.alerts[0], externalURL: stored.externalURL } : stored;
}
