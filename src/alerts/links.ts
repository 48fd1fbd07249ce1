/**
 * Links from an incident back to where its alert came from, pure: the alert's generatorURL (the
 * Prometheus graph, or Grafana's rule), Grafana's dashboard or panel when the alert names one, and
 * a new silence in Alertmanager's UI for the alert's labels. Only http(s) URLs are kept: the rest
 * of an alert is outside text and a link must not become something else.
 */

export interface AlertLinks {
  source?: string;
  grafana?: string;
  silence?: string;
}

/** What is read of an alert as stored (alerts.payload): the alert, and its delivery's externalURL. */
export interface StoredAlertLinks {
  labels?: Record<string, string>;
  generatorURL?: string;
  dashboardURL?: string;
  panelURL?: string;
  silenceURL?: string;
  externalURL?: string;
}

const MAX_URL = 3000;

export function httpUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_URL) return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Alertmanager's "new silence" page with the alert's labels as its matchers, as its UI links it:
 * `<externalURL>/#/silences/new?filter={a="1", b="2"}`, URL-encoded; a quote or backslash in a
 * value escaped as in PromQL's strings.
 */
export function silenceUrl(externalUrl: string, labels: Record<string, string>): string | undefined {
  const base = httpUrl(externalUrl);
  const names = Object.keys(labels).sort();
  if (!base || names.length === 0) return undefined;
  const matchers = names.map(
    (name) => `${name}="${labels[name]!.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
  );
  const filter = `{${matchers.join(', ')}}`;
  // The trailing slashes cut by a loop: `/\/+$/` is quadratic on a long run of them not at the
  // end, and externalURL is outside text.
  let end = base.length;
  while (end > 0 && base[end - 1] === '/') end--;
  const url = `${base.slice(0, end)}/#/silences/new?filter=${encodeURIComponent(filter)}`;
  return url.length <= MAX_URL ? url : undefined;
}

export function alertLinks(alert: StoredAlertLinks): AlertLinks {
  const source = httpUrl(alert.generatorURL);
  const grafana = httpUrl(alert.panelURL) ?? httpUrl(alert.dashboardURL);
  // Grafana sends its own silence link; Alertmanager's is built from its externalURL.
  const silence =
    httpUrl(alert.silenceURL) ??
    (alert.externalURL && alert.labels ? silenceUrl(alert.externalURL, alert.labels) : undefined);
  return {
    ...(source ? { source } : {}),
    ...(grafana ? { grafana } : {}),
    ...(silence ? { silence } : {}),
  };
}
