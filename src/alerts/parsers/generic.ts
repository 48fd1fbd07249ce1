import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isDiskAlert, type NormalizedAlert, severityOf } from '../alert.ts';

/**
 * The generic webhook, for anything that can POST JSON (a cron script, a monitoring tool without
 * an integration). Documented in the README; one alert or an array of them.
 */
export const GenericAlertSchema = z.object({
  host: z.string().min(1).max(253).describe('The affected host, as named in the hosts file'),
  status: z.enum(['firing', 'resolved']).default('firing'),
  name: z.string().min(1).max(200).default('alert').describe('Alert name, e.g. DiskFull'),
  problem: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .describe('"disk" for a full filesystem; default: from the name'),
  summary: z.string().max(2000).optional(),
  severity: z.enum(['critical', 'warning', 'info']).default('warning'),
  id: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('Stable id for deduplication; default: host + name + mount'),
  startsAt: z.iso.datetime({ offset: true }).optional(),
  labels: z.record(z.string(), z.string()).default({}),
  disk: z
    .object({
      mount: z.string().min(1),
      usedPercent: z.number().min(0).max(100).optional(),
      availBytes: z.number().int().nonnegative().optional(),
    })
    .optional(),
});

export const GenericAlertsSchema = z.array(GenericAlertSchema).min(1).max(1000);
export const GenericWebhookSchema = z.union([GenericAlertSchema, GenericAlertsSchema]);

export type GenericWebhook = z.infer<typeof GenericWebhookSchema>;

export type GenericAlert = z.infer<typeof GenericAlertSchema>;

export function fromGenericAlert(a: GenericAlert): NormalizedAlert {
  const disk =
    a.problem === 'disk' ||
    a.disk !== undefined ||
    (a.problem === undefined && isDiskAlert(a.name, a.labels, ''));
  const mount = a.disk?.mount ?? a.labels.mountpoint ?? null;
  const fingerprint =
    a.id ??
    createHash('sha256')
      .update(JSON.stringify([a.host, a.name, mount]))
      .digest('hex')
      .slice(0, 16);
  return {
    source: 'generic' as const,
    fingerprint,
    status: a.status,
    name: a.name,
    host: a.host,
    problem: disk ? 'disk' : (a.problem ?? a.name),
    summary: a.summary ?? (disk && mount ? `${a.name} on ${a.host} ${mount}` : a.name),
    severity: severityOf(a.severity),
    labels: a.labels,
    startsAt: a.startsAt ?? null,
    endsAt: null,
    mount,
    usedPercent: a.disk?.usedPercent ?? null,
  };
}

export function fromGeneric(payload: GenericWebhook): NormalizedAlert[] {
  return (Array.isArray(payload) ? payload : [payload]).map(fromGenericAlert);
}
