import { findingRedactor } from '../evidence/known-secrets.ts';
import type { Db } from '../store/db.ts';
import { rewriteFinding, type StoredFinding, unredactedFindings } from '../store/findings.ts';

/**
 * Findings stored before they were redacted at rest (no `redactions` in their body) are redacted
 * in place, once, at start: the values go beside the evidence (evidence/known-secrets.ts), as a
 * job's would, and the rows are rewritten as a job now writes them. A finding with nothing to hide
 * only gains `redactions: 0`. Returns how many rows were rewritten.
 */
export async function redactStoredFindings(db: Db, evidenceDir: string): Promise<number> {
  let done = 0;
  for (;;) {
    const rows = await unredactedFindings(db, 500);
    if (rows.length === 0) return done;
    const byIncident = new Map<number, StoredFinding[]>();
    for (const row of rows) byIncident.set(row.incidentId, [...(byIncident.get(row.incidentId) ?? []), row]);
    for (const [incidentId, found] of byIncident) {
      const parsed = found.map((row) => ({
        row,
        body: row.body,
        detail: typeof row.body.detail === 'string' ? row.body.detail : '',
      }));
      // With what an earlier page of this incident's rows (or a job) found.
      const scrub = await findingRedactor(
        evidenceDir,
        incidentId,
        parsed.map(({ row, detail }) => `${row.title}\n${detail}`),
      );
      await db.transaction(async (tx) => {
        for (const { row, body, detail } of parsed) {
          const title = scrub(row.title);
          const d = scrub(detail);
          await rewriteFinding(tx, row.id, title.text, {
            ...body,
            ...(typeof body.detail === 'string' ? { detail: d.text } : {}),
            redactions: title.count + d.count,
          });
          done++;
        }
      });
    }
  }
}
