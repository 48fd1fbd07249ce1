import type { Db } from './db.ts';

/**
 * The incidents' root messages in Slack as the incidents table keeps them: where the root is
 * (channel, root_ts) and the hash of what it shows (root_hash; NULL marks it stale, to be
 * rendered again).
 */

/** The hash of the incident's root as Slack shows it; null when stale or never posted. */
export async function rootHashOf(db: Db, incidentId: number): Promise<string | null> {
  const { rows } = await db.executeSql<{ root_hash: string | null }>(
    'SELECT root_hash FROM incidents WHERE id = $1',
    [incidentId],
  );
  return rows[0]?.root_hash ?? null;
}

export async function setRootHash(db: Db, incidentId: number, hash: string): Promise<void> {
  await db.executeSql('UPDATE incidents SET root_hash = $2 WHERE id = $1', [incidentId, hash]);
}

/** Marks these incidents' roots stale: the next drain renders them again. */
export async function markRootsStale(db: Db, incidentIds: number[]): Promise<void> {
  await db.executeSql('UPDATE incidents SET root_hash = NULL WHERE id = ANY($1::bigint[])', [incidentIds]);
}

/** The incidents whose posted root is stale, oldest first, at most `limit`. */
export async function staleRoots(db: Db, limit = 20): Promise<number[]> {
  const { rows } = await db.executeSql<{ id: string }>(
    'SELECT id FROM incidents WHERE root_ts IS NOT NULL AND root_hash IS NULL ORDER BY id LIMIT $1',
    [limit],
  );
  return rows.map((r) => Number(r.id));
}

/** The channel of the latest incident whose root is posted, if any. */
export async function latestRootChannel(db: Db): Promise<string | undefined> {
  const { rows } = await db.executeSql<{ channel: string }>(
    'SELECT channel FROM incidents WHERE channel IS NOT NULL AND root_ts IS NOT NULL ORDER BY id DESC LIMIT 1',
  );
  return rows[0]?.channel;
}
