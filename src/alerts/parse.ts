import { z } from 'zod';
import type { NormalizedAlert } from './alert.ts';
import {
  type AlertmanagerAlert,
  AlertmanagerAlertSchema,
  AlertmanagerEnvelopeSchema,
  fromAlertmanagerAlert,
} from './parsers/alertmanager.ts';
import { fromGenericAlert, type GenericAlert, GenericAlertSchema } from './parsers/generic.ts';
import {
  fromGrafanaAlert,
  type GrafanaAlert,
  GrafanaAlertSchema,
  GrafanaEnvelopeSchema,
} from './parsers/grafana.ts';

export type AlertSource = NormalizedAlert['source'];

export const ALERT_SOURCES: readonly AlertSource[] = ['alertmanager', 'grafana', 'generic'];

/**
 * What a delivery may hold. Real payloads nest four or five levels; a deeper body is refused before
 * JSON.parse, so nothing on the way (zod, JSON.stringify, a logger, PostgreSQL's jsonb parser)
 * walks it recursively.
 */
export const MAX_DEPTH = 32;
/** Alerts in one generic delivery. */
export const MAX_GENERIC_ALERTS = 1000;
/**
 * Lengths, in UTF-16 code units (at most 3 bytes of UTF-8 each), of what goes into an indexed
 * column: incidents.group_key is host:problem, alerts.dedup_key and thread_messages.dedup_key hold
 * fingerprint, status and start. These caps keep every key under 1.5 KB, well inside the 2,704
 * bytes a btree index entry may take. A host is a DNS name (253 at most), as for the generic webhook.
 */
export const MAX_HOST = 253;
export const MAX_NAME = 200;
export const MAX_FINGERPRINT = 200;
export const MAX_TIME = 64;

/** An alert of a delivery that cannot be used, with why; `index` is its place in the delivery. */
export interface RejectedAlert {
  index: number;
  error: string;
}

export interface UsableAlert {
  index: number;
  alert: NormalizedAlert;
  /** The alert as its schema read it (unknown fields dropped): bounded, every string storable. */
  payload: unknown;
}

export type ParsedDelivery =
  | {
      ok: true;
      /** The usable alerts. */
      alerts: NormalizedAlert[];
      /** The same, each with its place in the delivery and what of it is stored (alerts.payload). */
      items: UsableAlert[];
      rejected: RejectedAlert[];
    }
  | { ok: false; error: string; rejected: RejectedAlert[] };

/**
 * Parses a webhook body as received (bytes, or text). Pure, never throws: the caller stores the
 * body whatever the outcome. The envelope is checked first (a bad one makes the whole delivery
 * unusable); then each alert on its own, so a bad alert is rejected with its reason and the
 * others are kept. An alert is rejected for a wrong shape, a string PostgreSQL cannot store (NUL,
 * an unpaired surrogate), or a key field over its length cap.
 */
export function parseDelivery(source: AlertSource, body: string | Uint8Array): ParsedDelivery {
  const invalid = (error: string, rejected: RejectedAlert[] = []): ParsedDelivery => ({
    ok: false,
    error: printable(error, 1000),
    rejected,
  });
  let text: string;
  if (typeof body === 'string') text = body;
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      return invalid('body is not UTF-8 text');
    }
  }
  if (nestedDeeperThan(text, MAX_DEPTH)) return invalid(`body is nested deeper than ${MAX_DEPTH} levels`);
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch (error) {
    return invalid(`body is not JSON: ${(error as Error).message}`);
  }

  let list: unknown[];
  // Where an alert sits in the body, for messages: alerts.2, or 2 in a generic array.
  let at: (index: number) => Array<string | number>;
  let readAlert: (
    item: unknown,
  ) => { ok: true; alert: NormalizedAlert; stored: unknown } | { ok: false; error: z.ZodError };
  if (source === 'alertmanager' || source === 'grafana') {
    const envelope = (
      source === 'alertmanager' ? AlertmanagerEnvelopeSchema : GrafanaEnvelopeSchema
    ).safeParse(payload);
    if (!envelope.success) return invalid(describe(envelope.error));
    list = envelope.data.alerts;
    at = (i) => ['alerts', i];
    const read1 =
      source === 'alertmanager'
        ? (item: unknown) =>
            read(AlertmanagerAlertSchema, item, (a: AlertmanagerAlert) => fromAlertmanagerAlert(a))
        : (item: unknown) => read(GrafanaAlertSchema, item, (a: GrafanaAlert) => fromGrafanaAlert(a));
    // Each alert is stored with its delivery's externalURL: the root links a silence through it.
    const externalURL = envelope.data.externalURL;
    readAlert = (item) => {
      const r = read1(item);
      return r.ok && externalURL !== undefined
        ? { ...r, stored: { ...(r.stored as object), externalURL } }
        : r;
    };
  } else {
    if (Array.isArray(payload)) {
      const array = z.array(z.unknown()).min(1).max(MAX_GENERIC_ALERTS).safeParse(payload);
      if (!array.success) return invalid(describe(array.error));
      list = array.data;
      at = (i) => [i];
    } else {
      list = [payload];
      at = () => [];
    }
    readAlert = (item) => read(GenericAlertSchema, item, (a: GenericAlert) => fromGenericAlert(a));
  }

  const items: UsableAlert[] = [];
  const rejected: RejectedAlert[] = [];
  list.forEach((item, index) => {
    const r = readAlert(item);
    const error = r.ok
      ? (unstorable(r.stored, at(index)) ?? overLong(r.alert, at(index)))
      : describe(r.error, at(index));
    if (error === undefined && r.ok) items.push({ index, alert: r.alert, payload: r.stored });
    else rejected.push({ index, error: printable(error ?? '', 500) });
  });
  if (items.length === 0) return invalid(summarize(rejected), rejected);
  return { ok: true, alerts: items.map((i) => i.alert), items, rejected };
}

/** Why a delivery's alerts were rejected, in one line: the first five reasons and how many more. */
export function summarize(rejected: readonly RejectedAlert[]): string {
  const first = rejected
    .slice(0, 5)
    .map((r) => r.error)
    .join('; ');
  return rejected.length > 5 ? `${first}; and ${rejected.length - 5} more` : first;
}

function read<T>(
  schema: z.ZodType<T>,
  item: unknown,
  normalize: (value: T) => NormalizedAlert,
): { ok: true; alert: NormalizedAlert; stored: unknown } | { ok: false; error: z.ZodError } {
  const r = schema.safeParse(item);
  return r.success ? { ok: true, alert: normalize(r.data), stored: r.data } : { ok: false, error: r.error };
}

/** A path in the body for messages: "alerts.2.labels.instance", "(body)" for the top. */
function pathOf(path: ReadonlyArray<PropertyKey>): string {
  return path.length > 0 ? path.map((p) => printable(String(p), 100)).join('.') : '(body)';
}

function describe(error: z.ZodError, base: ReadonlyArray<PropertyKey> = []): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${pathOf([...base, ...i.path])}: ${i.message}`)
    .join('; ');
}

/**
 * True when the JSON text opens more than `limit` arrays or objects inside each other. One pass,
 * no recursion; brackets inside strings do not count. Invalid JSON is left to JSON.parse.
 */
export function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * Why a string cannot go into a text or jsonb column, or undefined: PostgreSQL stores no NUL
 * (U+0000), and jsonb refuses an unpaired surrogate (\ud800 alone), which UTF-8 cannot encode.
 */
export function unstorableString(value: string): string | undefined {
  if (value.includes('\u0000')) return 'contains a NUL character (U+0000), which PostgreSQL cannot store';
  if (!value.isWellFormed()) return 'contains an unpaired UTF-16 surrogate, which is not Unicode text';
  return undefined;
}

/** The first key or string in a parsed alert that PostgreSQL cannot store, as "path: why". */
function unstorable(value: unknown, base: ReadonlyArray<PropertyKey>): string | undefined {
  // Parsed alerts are a few levels deep, but walk without recursion all the same.
  const stack: Array<[unknown, ReadonlyArray<PropertyKey>]> = [[value, base]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      const why = unstorableString(v);
      if (why) return `${pathOf(path)}: ${why}`;
    } else if (Array.isArray(v)) {
      for (const [i, item] of v.entries()) stack.push([item, [...path, i]]);
    } else if (v !== null && typeof v === 'object')
      for (const [key, item] of Object.entries(v)) {
        const why = unstorableString(key);
        if (why) return `${pathOf([...path, key])} (the name): ${why}`;
        stack.push([item, [...path, key]]);
      }
  }
  return undefined;
}

/** A field of the alert that goes into an index and is longer than its cap, as "field: why". */
function overLong(alert: NormalizedAlert, base: ReadonlyArray<PropertyKey>): string | undefined {
  const fields: Array<[string, string | null, number]> = [
    ['host', alert.host, MAX_HOST],
    ['name', alert.name, MAX_NAME],
    ['problem', alert.problem, MAX_NAME],
    ['fingerprint', alert.fingerprint, MAX_FINGERPRINT],
    ['startsAt', alert.startsAt, MAX_TIME],
  ];
  for (const [field, value, max] of fields)
    if (value !== null && value.length > max)
      return `${base.length > 0 ? `${pathOf(base)}: ` : ''}the alert's ${field} is ${value.length} characters long; at most ${max} are accepted (it is part of an indexed key)`;
  return undefined;
}

/** A string fit for a message, a log line and a text column: no NUL or unpaired surrogate, cut at `max`. */
export function printable(value: string, max: number): string {
  const clean = value.toWellFormed().replaceAll('\u0000', '\\u0000');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
