import type { Db } from './db.ts';

/**
 * The evidence_artifacts table: each file found on a host (pending), pulled (transferring,
 * complete or failed), deleted from the bot host after its retention period, or freed on its host.
 * A file is named by its incident, host, container (none on the host itself) and path.
 */

export interface ArtifactPlace {
  incidentId: number;
  host: string;
  /** null: on the host itself. */
  container: string | null;
  path: string;
}

/** A core the collection found, recorded once as pending evidence with what the host said of it. */
export async function recordPendingArtifact(
  db: Db,
  at: ArtifactPlace,
  remote: {
    sizeBytes: number | null;
    mtime: Date | string | null;
    file: string | null;
    layerDir: string | null;
  },
): Promise<void> {
  await db.executeSql(
    `INSERT INTO evidence_artifacts (incident_id, host, container, remote_path, size_bytes, state,
       remote_size_bytes, remote_mtime, file_id, layer_dir)
     SELECT $1, $2, $3, $4, $5, 'pending', $5, $6, $7, $8
     WHERE NOT EXISTS (SELECT 1 FROM evidence_artifacts WHERE incident_id = $1 AND host = $2
                         AND container IS NOT DISTINCT FROM $3 AND remote_path = $4)`,
    [
      at.incidentId,
      at.host,
      at.container,
      at.path,
      remote.sizeBytes,
      remote.mtime,
      remote.file,
      remote.layerDir,
    ],
  );
}

/**
 * Marks the file as transferring for the run: the latest pending or failed record of it, or a
 * new one. Returns its id and its size as the collection saw it (0 when unknown).
 */
export async function startTransfer(
  db: Db,
  at: ArtifactPlace,
  runId: number,
): Promise<{ id: number; sizeBytes: number }> {
  const values = [at.incidentId, at.host, at.container, at.path, runId];
  const { rows } = await db.executeSql<{ id: string; size_bytes: string | null }>(
    `UPDATE evidence_artifacts SET state = 'transferring', run_id = $5, error = NULL
     WHERE id = (SELECT id FROM evidence_artifacts WHERE incident_id = $1 AND host = $2
                   AND container IS NOT DISTINCT FROM $3 AND remote_path = $4 AND state IN ('pending', 'failed')
                 ORDER BY id DESC LIMIT 1)
     RETURNING id, size_bytes`,
    values,
  );
  const row =
    rows[0] ??
    (
      await db.executeSql<{ id: string; size_bytes: string | null }>(
        `INSERT INTO evidence_artifacts (incident_id, host, container, remote_path, state, run_id)
         VALUES ($1, $2, $3, $4, 'transferring', $5) RETURNING id, size_bytes`,
        values,
      )
    ).rows[0]!;
  return { id: Number(row.id), sizeBytes: Number(row.size_bytes ?? 0) };
}

/**
 * The file came home whole: where it is kept and in which form, its size there, and the sha256s
 * of its content (null when it was kept compressed and not decoded) and of the file as kept.
 */
export async function completeTransfer(
  db: Db,
  id: number,
  pulled: {
    localPath: string;
    bytes: number;
    sha256: string;
    keptAs: 'content' | 'compressed';
    contentSha256: string | null;
    contentBytes: number | null;
  },
): Promise<void> {
  await db.executeSql(
    `UPDATE evidence_artifacts SET state = 'complete', local_path = $2, size_bytes = $3, sha256 = $4,
       kept_as = $5, kept_sha256 = $6, content_bytes = $7, completed_at = now()
     WHERE id = $1`,
    [
      id,
      pulled.localPath,
      pulled.bytes,
      pulled.contentSha256,
      pulled.keptAs,
      pulled.sha256,
      pulled.contentBytes,
    ],
  );
}

export async function failTransfer(db: Db, id: number, error: string): Promise<void> {
  await db.executeSql(`UPDATE evidence_artifacts SET state = 'failed', error = $2 WHERE id = $1`, [
    id,
    error,
  ]);
}

/** Every file the run was still transferring is failed, with why (first 1000 characters). */
export async function failRunTransfers(tx: Db, runId: number, error: string): Promise<void> {
  await tx.executeSql(
    `UPDATE evidence_artifacts SET state = 'failed', error = $2 WHERE run_id = $1 AND state = 'transferring'`,
    [runId, error.slice(0, 1000)],
  );
}

/** A file of the incident that came home whole, with what the host said of it when it was found. */
export interface CompleteArtifact {
  container: string | null;
  path: string;
  state: string;
  sha256: string | null;
  localPath: string | null;
  remoteSizeBytes: number | null;
  remoteMtime: Date | null;
  file: string | null;
  layerDir: string | null;
  /** How it is kept on the bot host ('content', 'compressed'; null before 0015). */
  keptAs: string | null;
  /** Its content's size, when the pull counted it (kept compressed and decoded, or kept as is). */
  contentBytes: number | null;
  /** Deleted from the bot host (retention). */
  deletedAt: Date | null;
  /** Deleted from its host (freed). */
  remoteDeletedAt: Date | null;
}

interface CompleteRow {
  container: string | null;
  remote_path: string;
  state: string;
  sha256: string | null;
  local_path: string | null;
  remote_size_bytes: string | null;
  remote_mtime: Date | string | null;
  file_id: string | null;
  layer_dir: string | null;
  kept_as: string | null;
  content_bytes: string | null;
  deleted_at: Date | string | null;
  remote_deleted_at: Date | string | null;
}

const date = (v: Date | string | null) => (v === null ? null : new Date(v));

/** The incident's files on a host that came home whole, oldest first. */
export async function completeArtifacts(
  db: Db,
  incidentId: number,
  host: string,
): Promise<CompleteArtifact[]> {
  const { rows } = await db.executeSql<CompleteRow>(
    `SELECT container, remote_path, state, sha256, local_path, remote_size_bytes, remote_mtime, file_id,
            layer_dir, kept_as, content_bytes, deleted_at, remote_deleted_at
     FROM evidence_artifacts WHERE incident_id = $1 AND host = $2 AND state = 'complete' ORDER BY id`,
    [incidentId, host],
  );
  return rows.map((r) => ({
    container: r.container,
    path: r.remote_path,
    state: r.state,
    sha256: r.sha256,
    localPath: r.local_path,
    remoteSizeBytes: r.remote_size_bytes === null ? null : Number(r.remote_size_bytes),
    remoteMtime: date(r.remote_mtime),
    file: r.file_id,
    layerDir: r.layer_dir,
    keptAs: r.kept_as,
    contentBytes: r.content_bytes === null ? null : Number(r.content_bytes),
    deletedAt: date(r.deleted_at),
    remoteDeletedAt: date(r.remote_deleted_at),
  }));
}

/** The file was deleted from its host (once: the first time is kept). */
export async function markFreed(db: Db, at: ArtifactPlace): Promise<void> {
  await db.executeSql(
    `UPDATE evidence_artifacts SET remote_deleted_at = now()
     WHERE incident_id = $1 AND host = $2 AND container IS NOT DISTINCT FROM $3 AND remote_path = $4
       AND state = 'complete' AND remote_deleted_at IS NULL`,
    [at.incidentId, at.host, at.container, at.path],
  );
}

/**
 * Marks the complete files kept on the bot host since before `cutoff` deleted at `now`, and
 * returns them (the caller deletes the files). Each is claimed once, by the process that marks it.
 */
export async function expireEvidence(
  db: Db,
  cutoff: Date,
  now: Date,
): Promise<Array<{ id: number; incidentId: number; localPath: string }>> {
  const { rows } = await db.executeSql<{ id: string; incident_id: string; local_path: string }>(
    `UPDATE evidence_artifacts SET deleted_at = $2
     WHERE state = 'complete' AND deleted_at IS NULL AND local_path IS NOT NULL AND completed_at < $1
     RETURNING id, incident_id, local_path`,
    [cutoff, now],
  );
  return rows.map((r) => ({ id: Number(r.id), incidentId: Number(r.incident_id), localPath: r.local_path }));
}

/** The incidents some of whose evidence is still on the bot host (or still coming). */
export async function incidentsWithEvidence(db: Db): Promise<Set<number>> {
  const { rows } = await db.executeSql<{ incident_id: string }>(
    'SELECT DISTINCT incident_id FROM evidence_artifacts WHERE deleted_at IS NULL',
  );
  return new Set(rows.map((r) => Number(r.incident_id)));
}
