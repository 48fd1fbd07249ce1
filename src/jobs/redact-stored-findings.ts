import { findingRedactor } from '../evidence/known-secrets.ts';
import type { Db } from '../store/db.ts';

/**
 * Findings stored before they were redacted at rest (no `redactions` in their body) are redacted
 * in place, once, at start: the values go beside the evidence (evidence/known-secrets.ts), as a
 * job's would, and the rows are rewritten as a job now writes them. A finding with nothing to hide
 * only gains `redactions: 0`. Returns how many rows were rewritten.
 */
export async function redactStoredFindings(db: Db, evidenceDir: string): Promise<number> {
  let done = 0;
  for (;;) {
    const { rows } = await db.executeSql<{ id: string; incident_id: string; title: string; body: unknown }>(
      `SELECT id, incident_id, title, body FROM findings WHERE NOT (body ? 'redactions') ORDER BY incident_id, id LIMIT 500`,
    );
    if (rows.length === 0) return done;
    const byIncident = new Map<number, typeof rows>();
    for (const row of rows) {
      const id = Number(row.incident_id);
      byIncident.set(id, [...(byIncident.get(id) ?? []), row]);
    }
    for (const [incidentId, found] of byIncident) {
      const parsed = found.map((row) => {
        const body = (typeof row.body === 'string' ? JSON.parse(row.body) : row.body) as Record<
          string,
          unknown
        >;
        const detail = typeof body.detail === 'string' ? body.detail : '';
        return { row, body, detail };
      });
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
          await tx.executeSql('UPDATE findings SET title = $2, body = $3 WHERE id = $1', [
            row.id,
            title.text,
            JSON.stringify({
              ...body,
              ...(typeof body.detail === 'string' ? { detail: d.text } : {}),
              redactions: title.count + d.count,
            }),
          ]);
          done++;
        }
      });
    }
  }
}
