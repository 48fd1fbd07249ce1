import type { Db } from './db.ts';

/**
 * incident_progress (migration 12): each phase's latest line of an incident's status message, and
 * the sequence that ranks the message's renderings (slack/status-message.ts tells why).
 */

/**
 * Writes a phase's line, unless the line it holds ranks above `rank` (a progress draw that
 * finishes after the final count).
 */
export async function writeProgressLine(
  db: Db,
  line: { incidentId: number; phase: string; position: number; rank: number; text: string },
): Promise<void> {
  await db.executeSql(
    `INSERT INTO incident_progress (incident_id, phase, position, rank, line)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (incident_id, phase) DO UPDATE SET rank = EXCLUDED.rank, line = EXCLUDED.line, updated_at = now()
     WHERE incident_progress.rank <= EXCLUDED.rank`,
    [line.incidentId, line.phase, line.position, line.rank, line.text],
  );
}

/** The next rank of a rendering of a status message: higher than every one taken before. */
export async function nextProgressEditRank(db: Db): Promise<number> {
  const { rows } = await db.executeSql<{ rank: string }>(`SELECT nextval('incident_progress_edits') AS rank`);
  return Number(rows[0]!.rank);
}

/** The incident's lines, one per phase, in the phases' order. */
export async function progressLines<Phase extends string>(
  db: Db,
  incidentId: number,
): Promise<Array<{ phase: Phase; line: string }>> {
  const { rows } = await db.executeSql<{ phase: Phase; line: string }>(
    'SELECT phase, line FROM incident_progress WHERE incident_id = $1 ORDER BY position',
    [incidentId],
  );
  return rows;
}
