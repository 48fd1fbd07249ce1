import type { Db } from './db.ts';

/** Queries of the incidents table that the jobs make. */

/** The incident's root message is rendered again: what it shows changed (marked stale, the outbox's next drain updates it). */
export async function markRootStale(db: Db, incidentId: number): Promise<void> {
  await db.executeSql('UPDATE incidents SET root_hash = NULL WHERE id = $1', [incidentId]);
}

/**
 * Open disk incidents, and ones opened with /investigate, opened before `openedBefore` and never
 * given a collection job: their collection was lost (the bot died between the alert's or the
 * command's commit and the send).
 */
export async function incidentsWithoutCollection(
  db: Db,
  openedBefore: Date,
  limit: number,
): Promise<Array<{ id: number; host: string }>> {
  const { rows } = await db.executeSql<{ id: string; host: string }>(
    `SELECT i.id, i.host FROM incidents i
     WHERE i.problem IN ('disk', 'manual') AND i.status <> 'resolved' AND i.opened_at < $1
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.incident_id = i.id AND j.kind = 'collect-host')
     ORDER BY i.id LIMIT $2`,
    [openedBefore, limit],
  );
  return rows.map((r) => ({ id: Number(r.id), host: r.host }));
}
