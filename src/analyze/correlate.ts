import { ErrorCode } from '../errors.ts';
import type { Container } from './container.ts';
import type { CoreFacts } from './core.ts';
import type { DumpTime } from './dump-time.ts';
import type { EvidenceItem, EvidenceSnapshot } from './evidence.ts';
import { EVIDENCE_KINDS, type EvidenceKind } from './extract.ts';
import { KnownSecrets } from './redact.ts';
import type { AnalysisError, Correlation, Dump, Finding, Report, Signature } from './report-schema.ts';

/**
 * Correlates the evidence of every dump analysed together and ranks it so that what explains the
 * crashes comes first: values that recur across dumps, weighted by how telling their kind is (a
 * request target over an incidental string), lowered when they look like runtime furniture present
 * in every process (documentation URLs in the interpreter's heap), raised when they look like an
 * endless stream, which is what a worker killed while reading forever would hold.
 */

export interface DumpRecord {
  file: string;
  entry: string | null;
  container: Container;
  fileBytes: number;
  sizeBytes: number;
  /** The file's modification time, or the tar member's. */
  mtime: Date;
  /** When the dump was written, from the most truthful source (dump-time.ts); default: mtime, a file time. */
  time?: DumpTime;
  facts: CoreFacts;
  evidence: EvidenceSnapshot;
}

export const MAX_CORRELATIONS = 50;
const EVIDENCE_PER_KIND = 200;

export const KIND_WEIGHT: Record<EvidenceKind, number> = {
  request: 1.0,
  url: 0.9,
  transaction: 0.9,
  exception: 0.8,
  sql: 0.7,
  header: 0.6,
  frame: 0.6,
  function: 0.5,
  traceback: 0.4,
  payload: 0.3,
  release: 0.2,
  environment: 0.2,
  env: 0.1,
};

/**
 * What the application was doing, named by its own code: a value of these kinds found in every dump
 * is what every worker was running, not the interpreter's or a library's strings.
 */
const APPLICATION_KINDS: ReadonlySet<EvidenceKind> = new Set<EvidenceKind>([
  'request',
  'transaction',
  'exception',
  'function',
  'frame',
]);

/** A frame in the interpreter's standard library or an installed package, not the application's code. */
const LIBRARY_PATH =
  /(\/lib\/python\d|[/\\](site|dist)-packages[/\\]|<frozen |\/usr\/(local\/)?lib\/|node_modules\/)/;

function isApplicationCode(kind: EvidenceKind, value: string): boolean {
  return APPLICATION_KINDS.has(kind) && !(kind === 'frame' && LIBRARY_PATH.test(value));
}

/** Hosts whose URLs sit in every interpreter's or library's memory: docs, licences, XML namespaces. */
const FURNITURE_HOST =
  /(^|\.)(python\.org|w3\.org|gnu\.org|openssl\.org|apache\.org|mozilla\.org|json-schema\.org|xmlsoap\.org|purl\.org|ietf\.org|opensource\.org|xml\.org|microsoft\.com|unicode\.org|sourceware\.org|kernel\.org|github\.com|readthedocs\.io|pypi\.org|wikipedia\.org|iana\.org|json\.org|rfc-editor\.org|sourceforge\.net|gitlab\.com|nodejs\.org|mozilla\.net|oracle\.com|sqlite\.org|zlib\.net)$/i;

const STREAM_EXTENSION = /\.(mp3|aac|m3u8?|pls|ogg|opus|flac|wav|ts|m4a)(?:[?#;]|$)/i;
const STREAM_PATH = /\/(stream|streams|live|listen|radio|icecast|shoutcast)(?:[/?#._-]|$)/i;
const STREAM_HOST = /(radio|stream|icecast|shoutcast)/i;
const STREAM_TYPE =
  /^content-type: (audio\/|video\/|application\/ogg|application\/(x-)?mpegurl|application\/vnd\.apple\.mpegurl)/i;

function hostAndPath(value: string): { host: string; path: string } | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/]*@)?([^/:?#]*)(?::\d+)?([^#]*)/i.exec(value);
  if (m) return { host: m[1] ?? '', path: m[2] || '/' };
  const r = /^[A-Z]+ (\S+)/.exec(value);
  if (r) return r[1]!.startsWith('/') ? { host: '', path: r[1]! } : hostAndPath(r[1]!);
  return undefined;
}

/** Why a value on its own looks like an endless stream (empty when it does not). */
export function streamReasons(kind: EvidenceKind, value: string): string[] {
  const reasons: string[] = [];
  if (kind === 'url' || kind === 'request') {
    const hp = hostAndPath(value);
    if (!hp) return reasons;
    const ext = STREAM_EXTENSION.exec(hp.path);
    if (ext) reasons.push(`its path ends in .${ext[1]!.toLowerCase()}, an audio/playlist format`);
    if (STREAM_PATH.test(hp.path)) reasons.push('its path names a live stream');
    if (STREAM_HOST.test(hp.host)) reasons.push(`its host (${hp.host}) names a radio or stream server`);
  } else if (kind === 'header') {
    if (STREAM_TYPE.test(value))
      reasons.push(`the response was ${value.slice('content-type: '.length)}, a media type`);
    if (value.startsWith('icy-')) reasons.push(`${value.split(':')[0]} is an Icecast/SHOUTcast radio header`);
  }
  return reasons;
}

export function isFurniture(kind: EvidenceKind, value: string): boolean {
  if (kind === 'env' || kind === 'release' || kind === 'environment') return true;
  if (kind !== 'url') return false;
  const hp = hostAndPath(value);
  return hp !== undefined && FURNITURE_HOST.test(hp.host);
}

/**
 * Ties are broken by code units, not localeCompare: a report must not depend on the machine's
 * locale, and ICU collation made sorting a few thousand values the slowest step of a report.
 */
function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function label(d: { file: string; entry: string | null }): string {
  return d.entry ? `${d.file}:${d.entry}` : d.file;
}

const byCountThenText = (a: EvidenceItem, b: EvidenceItem) => b.count - a.count || byText(a.value, b.value);

/** A dump's items by kind, each list most frequent first: one pass and one sort a kind. */
function sortedByKind(items: readonly EvidenceItem[]): Map<EvidenceKind, EvidenceItem[]> {
  const byKind = new Map<EvidenceKind, EvidenceItem[]>();
  for (const item of items) {
    const list = byKind.get(item.kind);
    if (list) list.push(item);
    else byKind.set(item.kind, [item]);
  }
  for (const list of byKind.values()) list.sort(byCountThenText);
  return byKind;
}

function topEvidence(byKind: Map<EvidenceKind, EvidenceItem[]>): EvidenceItem[] {
  const out: EvidenceItem[] = [];
  for (const kind of EVIDENCE_KINDS) out.push(...(byKind.get(kind) ?? []).slice(0, EVIDENCE_PER_KIND));
  return out;
}

interface Group {
  kind: EvidenceKind;
  value: string;
  dumps: Set<number>;
  occurrences: number;
}

/**
 * The dumps whose memory could be read: all but cores cut short before it (within their notes, or
 * with no evidence at all), which share nothing and would make every value look rarer than it is.
 */
function readableDumps(records: readonly DumpRecord[]): Set<number> {
  const readable = new Set<number>();
  records.forEach((r, i) => {
    const cut = r.facts.truncated && (r.facts.notesIncomplete || r.evidence.items.length === 0);
    if (!cut) readable.add(i);
  });
  return readable;
}

export function correlate(records: readonly DumpRecord[]): Correlation[] {
  return correlateGroups(records, groupEvidence(records));
}

/** correlate, with `records`' values grouped already (groupEvidence, or added as they came). */
function correlateGroups(records: readonly DumpRecord[], groups: readonly Group[]): Correlation[] {
  const context = scoringContext(records, groups);
  const scored: Correlation[] = [];
  for (const g of groups) {
    const correlation = scoreGroup(g, context);
    if (correlation) scored.push(correlation);
  }
  // On a tie, a page says more than its site's root (`…/status/1` before `http://example.test/`).
  const siteRoot = (c: Correlation) => (c.kind === 'url' && hostAndPath(c.value)?.path === '/' ? 1 : 0);
  scored.sort(
    (a, b) =>
      b.score - a.score ||
      b.dumps - a.dumps ||
      b.occurrences - a.occurrences ||
      siteRoot(a) - siteRoot(b) ||
      byText(a.value, b.value),
  );
  return scored.slice(0, MAX_CORRELATIONS);
}

/**
 * Every value of every dump, once per kind and value, with the dumps that hold it. Looked up by kind,
 * then by the value itself: a key made of both was a copy of each of the half million values of
 * eight text-dense dumps, which V8 then hashed, on the one thread the report is made on.
 */
function groupEvidence(records: readonly DumpRecord[]): Group[] {
  const index = newGroupIndex();
  addToGroups(index, records, 0);
  return index.groups;
}

interface GroupIndex {
  byKind: Map<EvidenceKind, Map<string, Group>>;
  groups: Group[];
}

const newGroupIndex = (): GroupIndex => ({ byKind: new Map(), groups: [] });

/** Adds `records`' values to `index`, the first record as dump number `first`. */
function addToGroups(index: GroupIndex, records: readonly DumpRecord[], first: number): void {
  records.forEach((record, i) => {
    for (const item of record.evidence.items) {
      let ofKind = index.byKind.get(item.kind);
      if (!ofKind) {
        ofKind = new Map();
        index.byKind.set(item.kind, ofKind);
      }
      let group = ofKind.get(item.value);
      if (!group) {
        group = { kind: item.kind, value: item.value, dumps: new Set(), occurrences: 0 };
        ofKind.set(item.value, group);
        index.groups.push(group);
      }
      group.dumps.add(first + i);
      group.occurrences += item.count;
    }
  });
}

/** What scoring one value needs to know about all the dumps. */
interface ScoringContext {
  records: readonly DumpRecord[];
  total: number;
  lossy: boolean;
  unlisted: Set<string>;
  readable: Set<number>;
  streamHeaderDumps: Set<number>;
  requestedPaths: Set<string>;
  inEveryDumpOfItsExecutables: (dumps: Set<number>) => boolean;
}

function scoringContext(records: readonly DumpRecord[], groups: readonly Group[]): ScoringContext {
  // A count is a lower bound where a dump lost values (its spill refused them), or where a value
  // is in dumps that could not list it (see src/evidence/overflow.ts).
  const lossy = records.some((r) => r.evidence.dropped > 0);
  const unlisted = new Set(records.flatMap((r) => r.evidence.unlistedElsewhere));
  // A core cut short before its memory holds nothing to share and is left out of "every dump".
  const readable = readableDumps(records);
  // Stream headers seen per dump, to tie a URL to the media type its response had.
  const streamHeaderDumps = new Set<number>();
  const requestedPaths = new Set<string>();
  for (const g of groups) {
    if (g.kind === 'header' && streamReasons(g.kind, g.value).length > 0)
      for (const d of g.dumps) streamHeaderDumps.add(d);
    if (g.kind === 'request') {
      const path = hostAndPath(g.value)?.path.split('?')[0];
      if (path) requestedPaths.add(path);
    }
  }
  return {
    records,
    total: records.length,
    lossy,
    unlisted,
    readable,
    streamHeaderDumps,
    requestedPaths,
    inEveryDumpOfItsExecutables: everyDumpOfItsExecutables(records, readable),
  };
}

/**
 * Dumps per executable: a URL in every dump of an interpreter is likely part of the interpreter.
 * The test returned says whether a set of dumps holds every readable dump of each of their
 * executables (of those with three dumps or more).
 */
function everyDumpOfItsExecutables(
  records: readonly DumpRecord[],
  readable: Set<number>,
): (dumps: Set<number>) => boolean {
  const byExecutable = new Map<string, Set<number>>();
  records.forEach((r, i) => {
    if (!readable.has(i)) return;
    const key = r.facts.executable ?? r.facts.processName ?? '?';
    const set = byExecutable.get(key) ?? new Set<number>();
    set.add(i);
    byExecutable.set(key, set);
  });
  const executableOf = (d: number) => records[d]!.facts.executable ?? records[d]!.facts.processName ?? '?';
  return (dumps) => {
    const executables = new Set([...dumps].filter((d) => readable.has(d)).map(executableOf));
    return (
      executables.size > 0 &&
      [...executables].every((e) => {
        const members = byExecutable.get(e)!;
        return members.size >= 3 && [...members].every((d) => dumps.has(d));
      })
    );
  };
}

/** One value's score and the reasons for it; undefined when it is not worth a line. */
function scoreGroup(g: Group, context: ScoringContext): Correlation | undefined {
  const { total, records } = context;
  const n = g.dumps.size;
  if (total >= 2 && n < 2 && g.kind !== 'request' && g.kind !== 'exception') return undefined;
  // The environment is context: worth a line only where it differs between dumps.
  if (g.kind === 'env' && (total < 2 || n === total)) return undefined;
  const lowerBound = context.lossy || context.unlisted.has(`${g.kind}\u0000${g.value}`);
  const why: string[] = [
    `in ${lowerBound ? 'at least ' : ''}${n} of ${total} dump${total === 1 ? '' : 's'}${lowerBound ? ' (a lower bound: some values could not be counted)' : ''}`,
  ];
  let score = KIND_WEIGHT[g.kind] * (0.5 + n / total);
  const reasons = streamReasons(g.kind, g.value);
  // A URL seen only in dumps that also hold a media response header was probably that response's.
  // Only where its own shape already hints at a stream or the process requested it: an
  // interpreter's documentation URLs sit in those same dumps too.
  const requested =
    g.kind === 'url' && context.requestedPaths.has(hostAndPath(g.value)?.path.split('?')[0] ?? '\u0000');
  if ((g.kind === 'url' || g.kind === 'request') && (reasons.length > 0 || requested)) {
    const all = [...g.dumps];
    if (all.every((d) => context.streamHeaderDumps.has(d))) {
      reasons.push(`every dump holding it also holds a media Content-Type or icy-* header (${n})`);
    }
  }
  if (requested && hostAndPath(g.value)?.path !== '/') {
    score *= 1.3;
    why.push('requested by the process (an HTTP request line names its path)');
  }
  if (reasons.length > 0) {
    score *= 1.6;
    why.push(`likely an endless stream: ${reasons.join('; ')}`);
  }
  score *= commonnessFactor(g, context, why);
  return {
    value: g.value,
    kind: g.kind,
    dumps: n,
    total,
    files: [...g.dumps].sort((a, b) => a - b).map((d) => label(records[d]!)),
    occurrences: g.occurrences,
    score: Math.round(score * 1000) / 1000,
    stream: reasons.length > 0,
    lowerBound,
    why: why.join('; '),
  };
}

/**
 * How much a value is lowered for being furniture or for being in every dump (1: not lowered),
 * its reason added to `why`.
 */
function commonnessFactor(g: Group, context: ScoringContext, why: string[]): number {
  const { readable, total } = context;
  // Requests, transactions and exceptions are what a worker was doing, not what its interpreter holds.
  // (Other application code in every dump of its executable is said to be so, below, not lowered.)
  const everyOfItsKind =
    g.kind !== 'request' &&
    g.kind !== 'transaction' &&
    g.kind !== 'exception' &&
    context.inEveryDumpOfItsExecutables(g.dumps);
  const inEvery = readable.size >= 3 && [...readable].every((d) => g.dumps.has(d));
  const cut = total - readable.size;
  if (isFurniture(g.kind, g.value)) {
    why.push(
      g.kind === 'url' ? 'documentation/library host: likely runtime furniture' : 'context, not a cause',
    );
    return 0.3;
  }
  if (isApplicationCode(g.kind, g.value) && (inEvery || everyOfItsKind)) {
    // The application's own code (fetch_feed in a profiling payload) in every worker is what they
    // all were running, not furniture: said as it is, and not lowered.
    why.push(
      `${inEvery ? 'in every dump' : 'in every dump of the same executable'}${cut > 0 ? ' not cut short' : ''}`,
    );
    return 1;
  }
  if (inEvery) {
    why.push(
      `in every dump${cut > 0 ? ' not cut short' : ''}, so it may come from the interpreter, a library or the configuration`,
    );
    return 0.4;
  }
  if (everyOfItsKind) {
    why.push(
      `in every dump of the same executable${cut > 0 ? ' not cut short' : ''}, so it may be interpreter or library furniture`,
    );
    return 0.45;
  }
  return 1;
}

/** When a dump was written: its record's time, else its file's mtime (said to be a file time). */
function timeOf(r: DumpRecord): DumpTime {
  return r.time ?? { at: r.mtime, source: 'file' };
}

/**
 * A dump's own most frequent request, exception or URL, when no shared value describes it; values
 * that only come from its environment (a DSN in SENTRY_DSN) say nothing about what it was doing.
 */
function ownTopEvidence(r: DumpRecord): { value: string } | undefined {
  const fromEnvironment = (value: string) => r.facts.environment.some((e) => e.includes(value));
  const rank = (kind: EvidenceKind) => (kind === 'request' ? 0 : kind === 'exception' ? 1 : 2);
  return r.evidence.items
    .filter(
      (i) =>
        i.kind === 'request' || i.kind === 'exception' || (i.kind === 'url' && !isFurniture(i.kind, i.value)),
    )
    .filter((i) => !fromEnvironment(i.value))
    .sort((a, b) => rank(a.kind) - rank(b.kind) || b.count - a.count || byText(a.value, b.value))[0];
}

interface SignatureEntry {
  sig: Signature;
  members: number[];
}

function signatures(
  records: readonly DumpRecord[],
  correlations: readonly Correlation[],
): Map<number, Signature> {
  const ranked = signatureCandidates(records, correlations);
  const byKey = new Map<string, SignatureEntry>();
  // A core cut short holds little of its memory: what it shares with no other dump says less than
  // the program and signal it shares with them.
  const tops = records.map(
    (r) =>
      ranked.find((c) => c.files.includes(label(r))) ?? (r.facts.truncated ? undefined : ownTopEvidence(r)),
  );
  // Dumps that hold evidence first: a dump holding none (a core cut short before its memory) then
  // joins the largest signature of its executable and signal rather than one of its own.
  const order = records.map((_, i) => i).sort((a, b) => Number(!tops[a]) - Number(!tops[b]) || a - b);
  for (const index of order) {
    const r = records[index]!;
    const { key, top } = signatureKey(r, tops[index], byKey);
    const time = timeOf(r);
    let entry = byKey.get(key);
    if (!entry) {
      entry = newSignature(r, top, time.at.toISOString());
      byKey.set(key, entry);
    }
    addToSignature(entry, index, label(r), time);
  }
  return numberSignatures(records, byKey);
}

/**
 * The correlations a signature may be named by, most telling first.
 * A signature names what its dumps were doing: a request target or an exception when there is one,
 * and one that sets them apart (a value in every dump of the set distinguishes nothing).
 */
function signatureCandidates(
  records: readonly DumpRecord[],
  correlations: readonly Correlation[],
): Correlation[] {
  const total = records.length;
  const readable = readableDumps(records).size;
  const usable = correlations.filter(
    (c) =>
      c.kind !== 'env' &&
      c.kind !== 'release' &&
      c.kind !== 'environment' &&
      (total < 2 || c.dumps < readable),
  );
  const telling = usable.filter((c) => c.kind === 'url' || c.kind === 'request' || c.kind === 'exception');
  return [...telling, ...usable.filter((c) => !telling.includes(c))];
}

/**
 * The signature a dump belongs to: its executable, signal and top evidence; a dump with no top
 * evidence joins the largest signature already made of its executable and signal.
 */
function signatureKey(
  r: DumpRecord,
  found: { value: string } | undefined,
  byKey: Map<string, SignatureEntry>,
): { key: string; top: { value: string } | undefined } {
  let top = found;
  const executable = r.facts.executable ?? r.facts.processName;
  const signal = r.facts.signal?.name ?? null;
  let key = JSON.stringify([executable, signal, top?.value ?? null]);
  if (!top) {
    const same = [...byKey.entries()]
      .filter(([, e]) => e.sig.executable === executable && e.sig.signal === signal)
      .sort((a, b) => b[1].sig.count - a[1].sig.count)[0];
    if (same) key = same[0];
    else if (r.facts.truncated) {
      const own = ownTopEvidence(r);
      key = JSON.stringify([executable, signal, own?.value ?? null]);
      top = own;
    }
  }
  return { key, top };
}

function newSignature(r: DumpRecord, top: { value: string } | undefined, when: string): SignatureEntry {
  return {
    sig: {
      id: '',
      executable: r.facts.executable ?? r.facts.processName,
      signal: r.facts.signal?.name ?? null,
      topEvidence: top?.value ?? null,
      count: 0,
      files: [],
      firstSeen: when,
      lastSeen: when,
      timeSources: [],
    },
    members: [],
  };
}

function addToSignature(entry: SignatureEntry, index: number, name: string, time: DumpTime): void {
  const when = time.at.toISOString();
  entry.sig.count++;
  entry.sig.files.push(name);
  entry.members.push(index);
  if (!entry.sig.timeSources.includes(time.source)) entry.sig.timeSources.push(time.source);
  if (when < entry.sig.firstSeen) entry.sig.firstSeen = when;
  if (when > entry.sig.lastSeen) entry.sig.lastSeen = when;
}

/** Signatures numbered S1, S2… from the largest, each dump mapped to its own. */
function numberSignatures(
  records: readonly DumpRecord[],
  byKey: Map<string, SignatureEntry>,
): Map<number, Signature> {
  for (const entry of byKey.values()) {
    entry.members.sort((a, b) => a - b);
    entry.sig.files = entry.members.map((m) => label(records[m]!));
  }
  const ordered = [...byKey.values()].sort(
    (a, b) => b.sig.count - a.sig.count || a.members[0]! - b.members[0]!,
  );
  const out = new Map<number, Signature>();
  ordered.forEach((entry, i) => {
    entry.sig.id = `S${i + 1}`;
    for (const m of entry.members) out.set(m, entry.sig);
  });
  return out;
}

/** How a core taken from a live process (gdb's gcore: no signal) is described. */
export const SNAPSHOT = 'taken by gcore while running (no signal)';

/** Findings and next steps, added to in the order a reader should see them. */
interface Advice {
  findings: Finding[];
  next: string[];
}

function findingsFor(
  records: readonly DumpRecord[],
  correlations: readonly Correlation[],
): { findings: Finding[]; next: string[] } {
  const advice: Advice = { findings: [], next: [] };
  const stream = correlations.find((c) => c.stream && (c.kind === 'url' || c.kind === 'request'));
  if (stream) streamFinding(stream, advice);
  // The request line the workers held, query string and all: what to look up in the access logs.
  const request = correlations.find((c) => c.kind === 'request' && !c.stream && c.value !== stream?.value);
  if (request) requestFinding(request, advice);
  signalFindings(records, advice);
  truncationFinding(records, advice);
  contextFindings(records, correlations, advice);
  if (advice.next.length === 0 && correlations[0]) {
    advice.next.push(`Start with the top correlation: ${correlations[0].value} (${correlations[0].why}).`);
  }
  return advice;
}

function streamFinding(stream: Correlation, { findings, next }: Advice): void {
  findings.push({
    severity: 'critical',
    title: `Likely endless stream in ${stream.lowerBound ? 'at least ' : ''}${stream.dumps} of ${stream.total} dumps: ${stream.value}`,
    detail: `${stream.why}. A worker that reads a live radio or video stream never finishes its request; it is killed when it hits its timeout, and each kill can leave a core.`,
  });
  next.push(
    `Find who configured ${stream.value}: search the application database (feeds, webhooks, integrations) for it.`,
    'Give the fetcher a read timeout and a maximum response size, and check Content-Type before reading the body.',
  );
}

function requestFinding(request: Correlation, { findings, next }: Advice): void {
  findings.push({
    severity: 'warning',
    title: `Request in memory in ${request.dumps} of ${request.total} dumps: ${request.value}`,
    detail: `${request.why}. An HTTP request line the processes held when their cores were written: most likely what they were serving, with the parameters that say for whom.`,
  });
  next.push(
    `Find ${request.value} in the access logs and traces around the time of the dumps: who sent it, how long it ran, and what its parameters point at.`,
  );
}

/**
 * Grouped by signal and by who sent it: a worker killed by its master and a process that
 * aborted itself mean different things even with the same signal.
 */
function signalFindings(records: readonly DumpRecord[], { findings, next }: Advice): void {
  const signals = new Map<string, { count: number; meaning: string }>();
  const senders = new Map<number, number>();
  for (const r of records) {
    const s = r.facts.signal;
    if (!s) continue;
    const fromOther = s.senderPid !== null && s.senderPid > 0 && s.senderPid !== r.facts.pid;
    const bySelf = !fromOther && (s.code === -6 || (s.senderPid !== null && s.senderPid === r.facts.pid));
    const key =
      s.number === 0
        ? SNAPSHOT
        : `died of ${s.name}${fromOther ? ', sent by another process' : bySelf ? ', raised by the process itself' : ''}`;
    const entry = signals.get(key) ?? { count: 0, meaning: s.meaning };
    entry.count++;
    signals.set(key, entry);
    if (fromOther) senders.set(s.senderPid!, (senders.get(s.senderPid!) ?? 0) + 1);
  }
  for (const [key, { count, meaning }] of signals) {
    findings.push({ severity: 'info', title: `${count} of ${records.length} dumps ${key}`, detail: meaning });
  }
  for (const [pid, count] of senders) {
    findings.push({
      severity: 'warning',
      title: `${count} dump${count === 1 ? ' was' : 's were'} killed by pid ${pid}`,
      detail: `The signal came from another process (pid ${pid}), typically the master or supervisor enforcing a worker timeout.`,
    });
    next.push(`Check pid ${pid}'s logs (the supervisor) for worker timeouts around the time of the dumps.`);
  }
  if (
    [...signals.keys()].some((k) => /^died of (SIGSEGV|SIGBUS)(, raised by the process itself)?$/.test(k))
  ) {
    next.push('Open a crashing core in gdb for a backtrace: gdb <executable> <core> -ex bt');
  }
}

function truncationFinding(records: readonly DumpRecord[], { findings, next }: Advice): void {
  const truncated = records.filter((r) => r.facts.truncated);
  if (truncated.length === 0) return;
  findings.push({
    severity: 'warning',
    title: `${truncated.length} of ${records.length} cores are truncated`,
    detail:
      'Each ends before its last segment: the disk most likely filled while the core was written. Their headers and the memory that was written are still analysed.',
  });
  next.push(
    'Free space and cap core dumps (ulimit -c, or systemd-coredump with MaxUse=) so the next crash cannot fill the disk.',
  );
}

/** What the dumps were in the middle of (an exception, a transaction), and what was redacted. */
function contextFindings(
  records: readonly DumpRecord[],
  correlations: readonly Correlation[],
  { findings, next }: Advice,
): void {
  const exception = correlations.find((c) => c.kind === 'exception');
  if (exception) {
    findings.push({
      severity: 'info',
      title: `Exception in memory in ${exception.dumps} of ${exception.total} dumps`,
      detail: exception.value,
    });
  }
  const transaction = correlations.find((c) => c.kind === 'transaction');
  if (transaction) {
    findings.push({
      severity: 'info',
      title: `Transaction in flight in ${transaction.dumps} of ${transaction.total} dumps: ${transaction.value}`,
      detail: 'Named in a Sentry/profiling payload in memory: the view or task the worker was running.',
    });
    next.push(`Look at ${transaction.value} in your tracing/profiling tool around the time of the dumps.`);
  }
  const redactions = records.reduce((sum, r) => sum + r.evidence.redactions + r.facts.redactions, 0);
  if (redactions > 0) {
    findings.push({
      severity: 'info',
      title: `${redactions} secret value${redactions === 1 ? ' was' : 's were'} redacted`,
      detail:
        'Passwords, tokens and keys found in memory were replaced by [REDACTED] before anything was printed.',
    });
  }
}

function toDump(r: DumpRecord, signature: Signature): Dump {
  const f = r.facts;
  const byKind = sortedByKind(r.evidence.items);
  const evidence = topEvidence(byKind);
  return {
    file: r.file,
    entry: r.entry,
    container: r.container,
    fileBytes: r.fileBytes,
    sizeBytes: r.sizeBytes,
    mtime: r.mtime.toISOString(),
    time: timeOf(r).at.toISOString(),
    timeSource: timeOf(r).source,
    arch: f.arch,
    pid: f.pid,
    ppid: f.ppid,
    uid: f.uid,
    gid: f.gid,
    processName: f.processName,
    commandLine: f.commandLine,
    commandLineSource: f.commandLineSource,
    psargs: f.psargs,
    executable: f.executable,
    executableSource: f.executableSource,
    execfn: f.execfn,
    libraries: f.libraries,
    mappedFiles: f.mappedFiles,
    signal: f.signal,
    threads: f.threads,
    threadList: f.threadList,
    truncated: f.truncated,
    expectedBytes: f.expectedBytes,
    urls: (byKind.get('url') ?? []).map((i) => ({ value: i.value, count: i.count })),
    evidence,
    environment: f.environment,
    redactions: r.evidence.redactions + f.redactions,
    stringsScanned: r.evidence.strings,
    evidenceDropped: r.evidence.dropped,
    signature: signature.id,
  };
}

/**
 * Hides, in every dump, each secret value that was identified anywhere in the set: a password found
 * by name in one dump's environment is hidden where it turns up unnamed in another's heap.
 */
export function scrubKnownSecrets(records: readonly DumpRecord[]): DumpRecord[] {
  return scrubWith(knownSecretsOf(records), records);
}

function knownSecretsOf(records: readonly DumpRecord[]): KnownSecrets {
  const known = new KnownSecrets();
  for (const r of records) {
    known.add(r.evidence.secrets);
    known.add(r.facts.secrets);
  }
  return known;
}

/** `records` with every secret `known` holds hidden in their values and command lines. */
function scrubWith(known: KnownSecrets, records: readonly DumpRecord[]): DumpRecord[] {
  if (known.size === 0) return [...records];
  return records.map((r) => {
    let extra = 0;
    const scrub = (text: string) => {
      const out = known.scrub(text);
      extra += out.count;
      return out.text;
    };
    const items = new Map<string, EvidenceItem>();
    for (const item of r.evidence.items) {
      const value = scrub(item.value);
      const key = `${item.kind}\u0000${value}`;
      const existing = items.get(key);
      if (existing) existing.count += item.count;
      else items.set(key, { ...item, value });
    }
    const f = r.facts;
    const facts: CoreFacts = {
      ...f,
      argv: f.argv?.map(scrub) ?? null,
      commandLine: f.commandLine === null ? null : scrub(f.commandLine),
      psargs: f.psargs === null ? null : scrub(f.psargs),
      environment: f.environment.map(scrub),
    };
    facts.redactions += extra;
    return { ...r, facts, evidence: { ...r.evidence, items: [...items.values()] } };
  });
}

/**
 * A dump whose core was cut before its NT_FILE note knows its program only by AT_EXECFN or argv[0]
 * (a symlink such as python3 for python3.11) or by its 15-byte name: where another dump of the set
 * mapped an executable under that path or name, it is the same program, and it gets that path, so
 * it joins the other dumps' signature instead of starting one of its own.
 */
export function resolveExecutables(records: readonly DumpRecord[]): DumpRecord[] {
  const byPath = new Map<string, Set<string>>();
  const byName = new Map<string, Set<string>>();
  const add = (map: Map<string, Set<string>>, key: string | null | undefined, executable: string) => {
    if (!key) return;
    const set = map.get(key) ?? new Set<string>();
    set.add(executable);
    map.set(key, set);
  };
  for (const r of records) {
    const f = r.facts;
    if (f.executableSource !== 'nt_file' || f.executable === null) continue;
    add(byPath, f.executable, f.executable);
    add(byPath, f.execfn, f.executable);
    add(byPath, f.argv?.[0] ?? f.psargs?.split(' ')[0], f.executable);
    add(byName, f.processName, f.executable);
  }
  const only = (set: Set<string> | undefined) => (set?.size === 1 ? [...set][0] : undefined);
  return records.map((r) => {
    const f = r.facts;
    if (f.executableSource === 'nt_file') return r;
    const found =
      only(byPath.get(f.executable ?? '')) ??
      only(byPath.get(f.argv?.[0] ?? f.psargs?.split(' ')[0] ?? '')) ??
      (f.executable === null ? only(byName.get(f.processName ?? '')) : undefined);
    if (found === undefined || found === f.executable) return r;
    return { ...r, facts: { ...f, executable: found, executableSource: 'other_dump' } };
  });
}

/**
 * Why a record cannot be reported, if it cannot: one bad dump must not take the report of the
 * others down with it (an Invalid Date would throw in toISOString and lose the whole run).
 */
function unreportable(r: DumpRecord): string | undefined {
  if (!(r.mtime instanceof Date) || Number.isNaN(r.mtime.getTime()))
    return 'its modification time is not a valid date';
  const { at } = timeOf(r);
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) return 'its time is not a valid date';
  return undefined;
}

/**
 * The headline buildReport would give `input` (its first finding's title), without the rest of a
 * report: what a partial analysis posts each time a file is done. The per-dump lists (toDump sorts
 * every kept value of every dump) and the signatures were most of a report, made up to eight times
 * over on the analysis's main thread while its workers still scanned, and then thrown away.
 */
export function headlineOf(input: readonly DumpRecord[]): string | undefined {
  const soFar = new HeadlineSoFar();
  soFar.add(input);
  return soFar.headline();
}

/**
 * headlineOf a set of dumps that grows (a partial analysis's, a file at a time), grouping each
 * dump's values once, as it is added, rather than every dump's again for each headline: on eight
 * text-dense dumps the last file's headline took over a second that way, on the thread that then
 * makes the counts exact and the report. Where a dump added holds a secret not known before, what
 * every dump's values read as changes, and all of them are grouped again.
 */
export class HeadlineSoFar {
  private readonly given: DumpRecord[] = [];
  private scrubbed: DumpRecord[] = [];
  private index = newGroupIndex();
  private secrets = 0;

  /** Takes more dumps in; their values are grouped now. */
  add(records: readonly DumpRecord[]): void {
    const fresh = records.filter((r) => unreportable(r) === undefined);
    this.given.push(...fresh);
    const known = knownSecretsOf(this.given);
    // The set of secrets only grows: the same size is the same set.
    if (known.size !== this.secrets) {
      this.secrets = known.size;
      this.scrubbed = scrubWith(known, this.given);
      this.index = newGroupIndex();
      addToGroups(this.index, this.scrubbed, 0);
      return;
    }
    const more = scrubWith(known, fresh);
    addToGroups(this.index, more, this.scrubbed.length);
    this.scrubbed.push(...more);
  }

  /** The headline of every dump added so far. */
  headline(): string | undefined {
    const records = resolveExecutables(this.scrubbed);
    return findingsFor(records, correlateGroups(records, this.index.groups)).findings[0]?.title;
  }
}

/**
 * `fileBytes`: the bytes of the input files read, compressed where they are (what the progress bar
 * counts); by default those of the distinct files the dumps came from.
 */
export function buildReport(
  input: readonly DumpRecord[],
  inputErrors: readonly AnalysisError[],
  now: Date,
  fileBytes?: number,
): Report {
  const errors = [...inputErrors];
  const sound = input.filter((r) => {
    const why = unreportable(r);
    if (why !== undefined) {
      errors.push({
        file: r.file,
        entry: r.entry,
        code: ErrorCode.Internal,
        message: `cannot report this dump: ${why}`,
      });
    }
    return why === undefined;
  });
  const records = resolveExecutables(scrubKnownSecrets(sound));
  const correlations = correlate(records);
  const sigs = signatures(records, correlations);
  const { findings, next } = findingsFor(records, correlations);
  const unique = [...new Set(sigs.values())];
  const dumps = records.map((r, i) => toDump(r, sigs.get(i)!));
  return {
    version: 1,
    generatedAt: now.toISOString(),
    dumps,
    errors,
    correlations,
    signatures: unique,
    findings,
    nextSteps: next,
    totals: {
      dumps: records.length,
      bytes: records.reduce((s, r) => s + r.sizeBytes, 0),
      fileBytes:
        fileBytes ??
        [...new Map(input.map((r) => [r.file, r.fileBytes])).values()].reduce((s, b) => s + b, 0),
      redactions: dumps.reduce((s, d) => s + d.redactions, 0),
    },
  };
}
