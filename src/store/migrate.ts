import { readdirSync, readFileSync } from 'node:fs';
import { CodedError, ErrorCode } from '../errors.ts';
import type { Db } from './db.ts';

/**
 * Schema migrations: the numbered SQL files in migrations/ (append-only: a released file is never
 * edited, a change is a new file). Applied in order, in one transaction under an advisory lock, so
 * two bots starting at once against one PostgreSQL apply each migration exactly once.
 */

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS_DIR = new URL('../../migrations/', import.meta.url);

/** Reads `NNNN_name.sql` files; the numbers must run 1, 2, 3, ... without gaps. */
export function loadMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  return files.map((file, i) => {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m || Number(m[1]) !== i + 1) {
      throw new CodedError(
        ErrorCode.MigrationFailed,
        `migration file ${file} should be named ${String(i + 1).padStart(4, '0')}_<name>.sql`,
      );
    }
    return { version: i + 1, name: m[2]!, sql: readFileSync(new URL(file, dir), 'utf8') };
  });
}

/** The highest migration applied; 0 before any (or when the schema has no migrations table). */
export async function appliedVersion(db: Db): Promise<number> {
  const { rows } = await db
    .executeSql<{ version: number }>('SELECT max(version) AS version FROM schema_migrations')
    .catch(() => ({ rows: [{ version: 0 }] }));
  return Number(rows[0]?.version ?? 0);
}

/** Applies what is missing; returns the versions it applied. */
export async function migrate(
  db: Db,
  migrations: readonly Migration[] = loadMigrations(),
): Promise<number[]> {
  return db.transaction(async (tx) => {
    // The lock key is the schema: two schemas on one server migrate independently.
    await tx.executeSql('SELECT pg_advisory_xact_lock(hashtext($1))', [`nightshift:${db.schema}`]);
    await tx.executeSql(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`,
    );
    const { rows } = await tx.executeSql<{ version: number }>('SELECT version FROM schema_migrations');
    const applied = new Set(rows.map((r) => Number(r.version)));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...applied].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new CodedError(
        ErrorCode.MigrationFailed,
        `the database has migration ${unknown.join(', ')} that this version of Nightshift does not know: it is older than the database`,
      );
    }
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      try {
        await tx.executeSql(m.sql);
      } catch (error) {
        throw new CodedError(
          ErrorCode.MigrationFailed,
          `migration ${m.version} (${m.name}) failed: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
      await tx.executeSql('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        m.version,
        m.name,
      ]);
      done.push(m.version);
    }
    return done;
  });
}
