/**
 * Prometheus metrics in the text exposition format, without a client library: counters kept
 * here, gauges read when scraped (incidents open, jobs by state come from the database).
 */

type Labels = Record<string, string>;

function key(name: string, labels: Labels): string {
  const parts = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length > 0 ? `${name}{${parts.join(',')}}` : name;
}

export interface MetricHelp {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
}

export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly help = new Map<string, MetricHelp>();

  describe(metric: MetricHelp): void {
    this.help.set(metric.name, metric);
  }

  inc(name: string, labels: Labels = {}, by = 1): void {
    const k = key(name, labels);
    this.counters.set(k, (this.counters.get(k) ?? 0) + by);
  }

  /** The exposition text: counters, then the gauges given, each family with its HELP and TYPE. */
  render(gauges: Array<{ name: string; labels?: Labels; value: number }> = []): string {
    const lines: string[] = [];
    const families = new Map<string, string[]>();
    for (const [k, v] of this.counters) {
      const name = k.split('{')[0]!;
      families.set(name, [...(families.get(name) ?? []), `${k} ${v}`]);
    }
    for (const g of gauges)
      families.set(g.name, [...(families.get(g.name) ?? []), `${key(g.name, g.labels ?? {})} ${g.value}`]);
    for (const [name, samples] of [...families].sort(([a], [b]) => a.localeCompare(b))) {
      const h = this.help.get(name);
      if (h) lines.push(`# HELP ${name} ${h.help}`, `# TYPE ${name} ${h.type}`);
      lines.push(...samples.sort());
    }
    return `${lines.join('\n')}\n`;
  }
}
