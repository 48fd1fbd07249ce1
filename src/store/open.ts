import type { Config } from '../config/env.ts';
import type { Db } from './db.ts';

/** The configured store: PostgreSQL with DATABASE_URL, else PGlite in the data directory. */
export async function openStore(
  config: Pick<Config, 'DATABASE_URL' | 'DATABASE_SCHEMA' | 'NIGHTSHIFT_DATA_DIR'>,
): Promise<Db> {
  if (config.DATABASE_URL) {
    const { openPostgres } = await import('./adapters/pg.ts');
    return openPostgres(config.DATABASE_URL, config.DATABASE_SCHEMA);
  }
  const { openPglite } = await import('./adapters/pglite.ts');
  return openPglite(`${config.NIGHTSHIFT_DATA_DIR}/pglite`, config.DATABASE_SCHEMA);
}
