import { parseUsedPercent } from './alert.ts';
import type { StoredAlertLinks } from './links.ts';

/**
 * Reading alerts as stored (alerts.payload), pure: rows stored before migration 9 hold their whole
 * delivery (the alert among its `alerts`), later rows the alert alone, as its schema read it.
 */

/** What is read of an alert as stored for its disk. */
interface StoredDiskAlert {
  fingerprint?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  disk?: { mount?: string; usedPercent?: number };
}

/** The mount an alert as stored names, and the used percent it gives (null when it says none). */
export function storedDisk(
  payload: unknown,
  fingerprint: string,
): { mount: string; usedPercent: number | null } | undefined {
  const stored = (payload ?? {}) as StoredDiskAlert & { alerts?: StoredDiskAlert[] };
  const alert = stored.alerts ? stored.alerts.find((a) => a.fingerprint === fingerprint) : stored;
  const mount = alert?.labels?.mountpoint ?? stored.disk?.mount;
  if (!mount) return undefined;
  const usedPercent =
    stored.disk?.usedPercent ??
    parseUsedPercent(alert?.annotations?.description ?? alert?.annotations?.summary ?? '');
  return { mount, usedPercent };
}

/** What the links of an alert as stored are read from: the alert, and its delivery's externalURL. */
export function storedLinks(payload: unknown): StoredAlertLinks | undefined {
  const stored = payload as (StoredAlertLinks & { alerts?: StoredAlertLinks[] }) | undefined;
  return stored?.alerts ? { ...stored.alerts[0], externalURL: stored.externalURL } : stored;
}
