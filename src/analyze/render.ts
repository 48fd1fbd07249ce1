import { formatBytes } from '../format-bytes.ts';
import { SNAPSHOT } from './correlate.ts';
import type { TimeSource } from './dump-time.ts';
import type { Dump, Finding, Report, Signature } from './report-schema.ts';

/**
 * The human report: what an on-call engineer reads at midnight. Short lines, the headline finding
 * first (the stream URL in k of N dumps), then the crash signatures (what killed the processes and
 * what they were doing), then the evidence ranked, the other findings, and what to do.
 */

function when(iso: string): string {
  return iso.replace('T', ' ').replace(/:\d\d\.\d+Z$/, 'Z');
}

const SOURCE_WORDS: Record<TimeSource, string> = {
  tar: 'tar member times',
  gzip: 'gzip header times',
  file_name: 'times in the file names',
  file: "the files' modification times, which a copy or git clone resets: not necessarily when they crashed",
};

/** Where a signature's times came from, in words; a file time is never passed off as the crash's. */
function timeNote(sources: readonly TimeSource[]): string {
  if (sources.length === 0) return '';
  return ` (from ${sources.map((s) => SOURCE_WORDS[s]).join('; ')})`;
}

function name(d: Pick<Dump, 'file' | 'entry'>): string {
  return d.entry ? `${d.file}:${d.entry}` : d.file;
}

/** A signature's signal in words: gcore's snapshots of live processes have none. */
function howTaken(signal: string | null): string {
  if (signal === null) return 'signal unknown';
  return signal === 'none' ? SNAPSHOT : signal;
}

/**
 * The findings printed at the top: the critical ones, else the first warning, else the first that
 * says how the processes died (never the count of redactions).
 */
export function headlineFindings(findings: readonly Finding[]): Finding[] {
  const critical = findings.filter((f) => f.severity === 'critical');
  if (critical.length > 0) return critical;
  const first =
    findings.find((f) => f.severity === 'warning') ??
    findings.find((f) => / dumps? (died of|taken by) /.test(f.title));
  return first ? [first] : [];
}

const SEVERITY = { critical: '!!', warning: ' !', info: ' -' } as const;

export function renderReport(report: Report, options: { maxCorrelations?: number } = {}): string {
  const out: string[] = [];
  const line = (text = '') => out.push(text);
  const { dumps, errors } = report;
  // Both sizes when they differ: the cores' own, and the files' as read (the progress bar's count).
  const { bytes, fileBytes } = report.totals;
  const read = fileBytes !== bytes ? ` of cores, from ${formatBytes(fileBytes)} of files read` : '';
  line(
    `Nightshift: ${dumps.length} dump${dumps.length === 1 ? '' : 's'} analysed, ${formatBytes(bytes)}${read}`,
  );
  if (errors.length > 0)
    line(`${errors.length} file${errors.length === 1 ? '' : 's'} could not be analysed (listed at the end)`);
  if (report.totals.redactions > 0) line(`${report.totals.redactions} secret values redacted`);

  // The headline first: what most likely explains the crashes, before the signatures and details.
  const headline = headlineFindings(report.findings);
  if (headline.length > 0) line();
  for (const f of headline) {
    line(`${SEVERITY[f.severity]} ${f.title}`);
    line(`   ${f.detail}`);
  }

  for (const sig of report.signatures) renderSignature(sig, dumps, line);
  renderCorrelations(report, options.maxCorrelations ?? 12, line);

  const rest = report.findings.filter((f) => !headline.includes(f));
  if (rest.length > 0) {
    line();
    line(headline.length > 0 ? 'Other findings' : 'Findings');
    for (const f of rest) {
      line(`${SEVERITY[f.severity]} ${f.title}`);
      line(`   ${f.detail}`);
    }
  }

  if (report.nextSteps.length > 0) {
    line();
    line('What to look at next');
    for (const [i, step] of report.nextSteps.entries()) line(`${i + 1}. ${step}`);
  }

  if (errors.length > 0) {
    line();
    line('Could not analyse');
    for (const e of errors) line(`  ${name(e)}: ${e.message} [${e.code}]`);
  }
  return `${out.join('\n')}\n`;
}

type Line = (text?: string) => void;

/** One crash signature: how its processes died, what they ran, when, and its dumps. */
function renderSignature(sig: Signature, dumps: readonly Dump[], line: Line): void {
  const members = dumps.filter((d) => d.signature === sig.id);
  const first = members[0]!;
  line();
  line(
    `${sig.id}: ${sig.count} dump${sig.count === 1 ? '' : 's'} of ${sig.executable ?? 'an unknown executable'}, ${howTaken(sig.signal)}`,
  );
  if (first.signal) renderSignal(first.signal, members, line);
  line(
    `  process   ${first.processName ?? '?'}, uid ${first.uid ?? '?'}, ${first.threads} thread${first.threads === 1 ? '' : 's'}`,
  );
  const commands = [...new Set(members.map((d) => d.commandLine).filter((c): c is string => c !== null))];
  for (const command of commands.slice(0, 3)) line(`  command   ${command}`);
  if (commands.length > 3) line(`            (+${commands.length - 3} other command lines)`);
  if (sig.topEvidence) line(`  evidence  ${sig.topEvidence}`);
  line(
    `  seen      ${when(sig.firstSeen)}${when(sig.lastSeen) !== when(sig.firstSeen) ? ` to ${when(sig.lastSeen)}` : ''}${timeNote(sig.timeSources)}`,
  );
  for (const d of members) {
    const flags = [d.container, formatBytes(d.sizeBytes), d.truncated ? 'TRUNCATED' : '']
      .filter(Boolean)
      .join(', ');
    line(`  - pid ${d.pid ?? '?'}  ${name(d)} (${flags})`);
  }
}

/** The signature's signal, as its first dump got it, and who sent it to which of its dumps. */
function renderSignal(signal: NonNullable<Dump['signal']>, members: readonly Dump[], line: Line): void {
  const code = signal.codeName ? `, ${signal.codeName}` : '';
  // Each dump against its own pid: abort() signals itself, and that is no sender worth naming.
  const killed = members.filter((d) => {
    const sender = d.signal?.senderPid;
    return sender !== null && sender !== undefined && sender > 0 && sender !== d.pid;
  });
  const senders = [...new Set(killed.map((d) => d.signal!.senderPid!))];
  const some = killed.length < members.length ? ` (${killed.length} of ${members.length} dumps)` : '';
  const from = senders.length > 0 ? `; sender pid ${senders.join(', ')}${some}` : '';
  if (signal.number === 0) line('  signal    none');
  else line(`  signal    ${signal.name} (${signal.number}${code})${from}`);
  if (signal.faultAddress) line(`  address   ${signal.faultAddress}`);
  line(`  meaning   ${signal.meaning}`);
}

function renderCorrelations(report: Report, max: number, line: Line): void {
  const correlations = report.correlations.slice(0, max);
  if (correlations.length === 0) return;
  line();
  line(
    report.dumps.length > 1 ? 'Shared across the dumps, most telling first' : 'Evidence, most telling first',
  );
  correlations.forEach((c, i) => {
    line(
      `${String(i + 1).padStart(2)}. [${c.kind}] ${c.value}${c.stream ? '   << likely endless stream' : ''}`,
    );
    line(`    ${c.why}`);
  });
}
