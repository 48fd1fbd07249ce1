import type { Finding } from '../../analyze/report-schema.ts';
import type { ExecResult, RemoteHost } from '../transport.ts';

/**
 * A collector: fixed, read-only command text (so it runs without approval) and a pure parser
 * from its output to findings. Collectors that depend on an earlier one's findings (the largest
 * directories of the fullest filesystem) take them as input.
 */
export interface Collector<Input = void> {
  name: string;
  command(input: Input): string;
  timeoutMs: number;
  maxOutputBytes: number;
  parse(result: ExecResult, input: Input): CollectorOutput;
}

export interface CollectorOutput {
  findings: Finding[];
  /** Facts for later collectors and for the root message (disk usage per mount). */
  facts?: Record<string, unknown>;
}

export async function runCollector<Input>(
  host: RemoteHost,
  collector: Collector<Input>,
  input: Input,
): Promise<CollectorOutput> {
  const result = await host.exec({
    command: collector.command(input),
    timeoutMs: collector.timeoutMs,
    maxOutputBytes: collector.maxOutputBytes,
  });
  const output = collector.parse(result, input);
  if (result.timedOut) {
    output.findings.push({
      severity: 'warning',
      title: `${collector.name} on ${host.name} stopped after ${Math.round(collector.timeoutMs / 1000)} s`,
      detail: 'The command ran past its time limit and was killed; what it printed before is used.',
    });
  }
  if (result.truncated) {
    output.findings.push({
      severity: 'info',
      title: `${collector.name} output on ${host.name} was cut at ${collector.maxOutputBytes} bytes`,
      detail: 'The rest was dropped.',
    });
  }
  return output;
}
