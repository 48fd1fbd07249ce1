import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * Prometheus metrics through prom-client: one registry per bot, with the client's default process
 * and Node.js metrics (CPU, memory, file descriptors, event-loop lag, GC, heap) beside Nightshift's
 * own. Counters are kept here; gauges, histograms and summaries that the database knows (incidents
 * open, jobs by state, the outbox, latencies) are set from it at each scrape (http/health.ts), so
 * they survive a restart and agree with what doctor reads.
 */

type Labels = Record<string, string>;

/** One histogram or summary computed from the store: what a scrape sets, and prom-client prints. */
export interface ComputedSamples {
  count: number;
  sum: number;
  /** Histograms: how many observations are <= each bucket's upper bound (cumulative). */
  buckets?: Array<{ le: number; count: number }>;
  /** Summaries: the value at each quantile. */
  quantiles?: Array<{ quantile: number; value: number }>;
}

/**
 * A histogram or summary whose observations live in the database: prom-client's own Histogram
 * only counts what this process observed, and a bot restarted would lose them. It speaks the
 * registry's metric interface (get() → name, help, type, values), so the exposition text is
 * prom-client's own, with `# TYPE name histogram` (or summary) and `_bucket{le=…}`, `_sum`,
 * `_count` samples.
 */
export class ComputedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram' | 'summary';
  readonly aggregator = 'sum';
  private samples: ComputedSamples | undefined;

  constructor(name: string, help: string, type: 'histogram' | 'summary') {
    this.name = name;
    this.help = help;
    this.type = type;
  }

  set(samples: ComputedSamples | undefined): void {
    this.samples = samples;
  }

  reset(): void {
    this.samples = undefined;
  }

  get() {
    const s = this.samples;
    const values: Array<{ metricName?: string; labels: Record<string, string | number>; value: number }> = [];
    if (s) {
      if (this.type === 'histogram') {
        for (const b of s.buckets ?? [])
          values.push({ metricName: `${this.name}_bucket`, labels: { le: b.le }, value: b.count });
        values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf' }, value: s.count });
      } else {
        for (const q of s.quantiles ?? []) values.push({ labels: { quantile: q.quantile }, value: q.value });
      }
      values.push({ metricName: `${this.name}_sum`, labels: {}, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: {}, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

export interface MetricsOptions {
  /** prom-client's default process and Node.js metrics (process_*, nodejs_*). Default true. */
  defaultMetrics?: boolean;
}

export class Metrics {
  readonly registry = new Registry();

  constructor(options: MetricsOptions = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The text format's content type (version 0.0.4), for the /metrics answer. */
  get contentType(): string {
    return this.registry.contentType;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Counter;
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Gauge;
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  computed(name: string, help: string, type: 'histogram' | 'summary'): ComputedMetric {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as unknown as ComputedMetric;
    const metric = new ComputedMetric(name, help, type);
    this.registry.registerMetric(metric as never);
    return metric;
  }

  /** Adds to a counter; one not described yet is made with these label names. */
  inc(name: string, labels: Labels = {}, by = 1): void {
    // Label names in one order, so a series is printed the same whichever order a caller used.
    const sorted = Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
    this.counter(name, name, Object.keys(sorted)).inc(sorted, by);
  }

  /** The exposition text of every metric in the registry. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
