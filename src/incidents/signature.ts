/**
 * The crash signature of an incident and what it shares with others across the fleet, pure.
 * Several hosts often fill at once with the same crash (the seed: "several servers near full at
 * the same time"); the signature (executable + signal + top evidence value, as the analyzer groups
 * dumps: analyze/correlate.ts) is what ties their incidents together, and a resolved incident with
 * the same signature is the same problem coming back.
 */

export interface CrashSignature {
  executable: string | null;
  signal: string | null;
  topEvidence: string | null;
}

/** What the analysis job stores of each signature in its result (jobs.result.signatures). */
export interface StoredSignature extends CrashSignature {
  count: number;
}

const nullableString = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : null);

/**
 * The incident's signature from its latest analysis's stored result: the one most of its dumps
 * share (the first stored, best ranked, on a tie). Undefined when the result holds none (an
 * analysis from before signatures were stored, no dump read) or one that names nothing: a
 * signature of nulls would match every other crash nobody could read.
 */
export function crashSignature(result: unknown): CrashSignature | undefined {
  const list = (result as { signatures?: unknown } | null | undefined)?.signatures;
  if (!Array.isArray(list)) return undefined;
  let best: (CrashSignature & { count: number }) | undefined;
  for (const item of list) {
    if (!item || typeof item !== 'object') continue;
    const o = item as Record<string, unknown>;
    const sig = {
      executable: nullableString(o.executable),
      signal: nullableString(o.signal),
      topEvidence: nullableString(o.topEvidence),
      count: typeof o.count === 'number' ? o.count : 0,
    };
    if (sig.executable === null && sig.topEvidence === null) continue;
    if (!best || sig.count > best.count) best = sig;
  }
  if (!best) return undefined;
  return { executable: best.executable, signal: best.signal, topEvidence: best.topEvidence };
}

/** Equal keys, the same crash. */
export function signatureKey(sig: CrashSignature): string {
  return JSON.stringify([sig.executable, sig.signal, sig.topEvidence]);
}

const EVIDENCE_SHOWN = 120;

/** One line for people: the program's name, the signal, the evidence (plain text, not mrkdwn). */
export function describeSignature(sig: CrashSignature): string {
  const program = sig.executable ? (sig.executable.split('/').pop() ?? sig.executable) : 'unknown program';
  const evidence =
    sig.topEvidence && sig.topEvidence.length > EVIDENCE_SHOWN
      ? `${sig.topEvidence.slice(0, EVIDENCE_SHOWN - 1)}…`
      : sig.topEvidence;
  return [program, sig.signal ?? 'no signal', ...(evidence ? [evidence] : [])].join(' · ');
}

/** An incident as the fleet view sees it. */
export interface FleetIncident {
  id: number;
  host: string;
  status: 'open' | 'investigating' | 'mitigated' | 'resolved';
  openedAt: Date;
  signature?: CrashSignature;
  /** Bytes of the cores its latest analysis read (0 before one). */
  coreBytes: number;
}

export interface IncidentRef {
  id: number;
  host: string;
}

export interface Related {
  /** Incidents not resolved, on other hosts, with the same crash: by id. */
  sameCrash: IncidentRef[];
  /** The latest resolved incident with the same crash opened before this one (any host). */
  recurrenceOf?: IncidentRef;
}

/** What an incident shares with the others: the same crash elsewhere now, the same crash before. */
export function relatedIncidents(self: FleetIncident, all: readonly FleetIncident[]): Related {
  if (!self.signature) return { sameCrash: [] };
  const key = signatureKey(self.signature);
  const same = all.filter((o) => o.id !== self.id && o.signature && signatureKey(o.signature) === key);
  const sameCrash = same
    .filter((o) => o.status !== 'resolved' && o.host !== self.host)
    .sort((a, b) => a.id - b.id)
    .map(({ id, host }) => ({ id, host }));
  const before = same
    .filter(
      (o) => o.status === 'resolved' && o.openedAt.getTime() <= self.openedAt.getTime() && o.id < self.id,
    )
    .sort((a, b) => b.id - a.id)[0];
  return { sameCrash, ...(before ? { recurrenceOf: { id: before.id, host: before.host } } : {}) };
}

export interface FleetSignature {
  signature: CrashSignature;
  incidents: (IncidentRef & { status: FleetIncident['status'] })[];
  hosts: string[];
  coreBytes: number;
}

export interface FleetOverview {
  /** Hosts with an incident not resolved. */
  hosts: string[];
  open: number;
  mitigated: number;
  /** Signatures of incidents not resolved, the most incidents first. */
  signatures: FleetSignature[];
  /** Incidents not resolved whose crash is not known yet (no analysis, or one that named nothing). */
  unknown: number;
  /** Bytes of cores of the incidents not resolved. */
  coreBytes: number;
}

/** The fleet at a glance: what is not resolved, grouped by crash. */
export function fleetOverview(all: readonly FleetIncident[]): FleetOverview {
  const live = all.filter((i) => i.status !== 'resolved').sort((a, b) => a.id - b.id);
  const groups = new Map<string, FleetSignature>();
  let unknown = 0;
  for (const i of live) {
    if (!i.signature) {
      unknown++;
      continue;
    }
    const key = signatureKey(i.signature);
    let group = groups.get(key);
    if (!group) {
      group = { signature: i.signature, incidents: [], hosts: [], coreBytes: 0 };
      groups.set(key, group);
    }
    group.incidents.push({ id: i.id, host: i.host, status: i.status });
    if (!group.hosts.includes(i.host)) group.hosts.push(i.host);
    group.coreBytes += i.coreBytes;
  }
  return {
    hosts: [...new Set(live.map((i) => i.host))].sort(),
    open: live.filter((i) => i.status !== 'mitigated').length,
    mitigated: live.filter((i) => i.status === 'mitigated').length,
    signatures: [...groups.values()].sort(
      (a, b) => b.incidents.length - a.incidents.length || a.incidents[0]!.id - b.incidents[0]!.id,
    ),
    unknown,
    coreBytes: live.reduce((s, i) => s + i.coreBytes, 0),
  };
}
