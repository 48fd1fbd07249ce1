import {
  type CrashSignature,
  crashSignature,
  describeSignature,
  type FleetIncident,
  type Related,
  relatedIncidents,
  signatureKey,
} from '../incidents/signature.ts';
import type { Db } from '../store/db.ts';
import { latestAnalysis, latestIncidentsWithAnalysis, succeededRunKinds } from '../store/fleet.ts';
import { markRootsStale } from '../store/incident-roots.ts';
import { latestDiskChange } from '../store/records.ts';
import { type AnswerCorrelation, analysisHeadline, customerOf } from './blocks/analysis.ts';
import type { FindingNotice, SummaryFacts } from './blocks/incident.ts';

/**
 * What the store knows of the fleet for the Slack side: each incident's crash signature (its
 * latest successful analysis's), the incidents related to one, and what a resolved one found and
 * did. Matching itself is pure (incidents/signature.ts).
 */

/** How far back the fleet view looks, in incidents: a recurrence older than this is not linked. */
const FLEET_WINDOW = 500;

/** The latest incidents with their signatures, newest first. */
export async function fleetIncidents(db: Db): Promise<FleetIncident[]> {
  return (await latestIncidentsWithAnalysis(db, FLEET_WINDOW)).map(({ analysis, ...incident }) => {
    const result = analysis as { bytes?: unknown } | null;
    const signature = crashSignature(result);
    return {
      ...incident,
      ...(signature ? { signature } : {}),
      coreBytes: typeof result?.bytes === 'number' ? result.bytes : 0,
    };
  });
}

/**
 * Marks for re-rendering the roots of the incidents with the same crash as this one (and its
 * own): a match that just appeared, or one that changed, shows on all of them.
 */
export async function markRelatedStale(db: Db, incidentId: number): Promise<void> {
  const all = await fleetIncidents(db);
  const self = all.find((i) => i.id === incidentId);
  if (!self?.signature) return;
  const key = signatureKey(self.signature);
  const ids = all.filter((i) => i.signature && signatureKey(i.signature) === key).map((i) => i.id);
  await markRootsStale(db, ids);
}

export interface AnalysisView {
  headline?: string;
  /** The request the workers held and the customer it names, as the analysis answer shows it. */
  customer?: { key: string; id: string; request: string };
  signature?: CrashSignature;
}

/** What the incident's latest successful analysis found: the headline, the customer, the signature. */
export async function analysisView(db: Db, incidentId: number): Promise<AnalysisView> {
  const analysis = await latestAnalysis<FindingNotice['severity']>(db, incidentId);
  if (!analysis) return {};
  // Its findings (stored redacted) and ranked correlations, read as the answer in the thread
  // reads them, so the root names the stream's URL plain.
  const result = analysis.result as { correlations?: AnswerCorrelation[] } | null;
  const correlations = result?.correlations ?? [];
  const headline = analysisHeadline({
    correlations,
    findings: analysis.findings.map((f) => ({ ...f, detail: '' })),
  });
  const request = correlations.find((c) => c.kind === 'request' && customerOf(c.value));
  const who = request ? customerOf(request.value) : undefined;
  const signature = crashSignature(result);
  return {
    ...(headline ? { headline } : {}),
    ...(request && who ? { customer: { ...who, request: request.value } } : {}),
    ...(signature ? { signature } : {}),
  };
}

/** What a resolved incident found and did, for the one its crash came back in. */
export interface PastIncident {
  id: number;
  host: string;
  headline?: string;
  freedBytes?: number;
  /** The kinds of the proposals that ran to the end (free, guard, script, sql), in order. */
  ran: string[];
}

export async function pastIncident(db: Db, ref: { id: number; host: string }): Promise<PastIncident> {
  const { headline } = await analysisView(db, ref.id);
  const change = await latestDiskChange(db, ref.id);
  const ran = await succeededRunKinds(db, ref.id);
  return {
    ...ref,
    ...(headline ? { headline } : {}),
    ...(change ? { freedBytes: change.freedBytes } : {}),
    ran,
  };
}

/** The incidents related to this one, and what the one it recurs of found and did. */
export async function relatedView(
  db: Db,
  incidentId: number,
): Promise<{ related: Related; past?: PastIncident }> {
  const all = await fleetIncidents(db);
  const self = all.find((i) => i.id === incidentId);
  if (!self) return { related: { sameCrash: [] } };
  const related = relatedIncidents(self, all);
  const past = related.recurrenceOf ? await pastIncident(db, related.recurrenceOf) : undefined;
  return { related, ...(past ? { past } : {}) };
}

/** The postmortem's facts: the root cause and customer found, what was freed, the related incidents. */
export async function summaryFacts(db: Db, incidentId: number): Promise<SummaryFacts> {
  const analysis = await analysisView(db, incidentId);
  const { related, past } = analysis.signature
    ? await relatedView(db, incidentId)
    : { related: { sameCrash: [] } };
  const change = await latestDiskChange(db, incidentId);
  return {
    ...(analysis.headline ? { rootCause: analysis.headline } : {}),
    ...(analysis.signature ? { crash: describeSignature(analysis.signature) } : {}),
    ...(analysis.customer ? { customer: analysis.customer } : {}),
    ...(change ? { freed: { bytes: change.freedBytes, lines: change.lines } } : {}),
    ...(related.sameCrash.length > 0 ? { sameCrash: related.sameCrash } : {}),
    ...(past ? { recurrenceOf: past } : {}),
  };
}
