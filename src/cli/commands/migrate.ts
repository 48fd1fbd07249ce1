import { loadConfig } from '../../config/env.ts';
import { redactUrl } from '../../store/adapters/pg.ts';
import { migrate } from '../../store/migrate.ts';
import { openStore } from '../../store/open.ts';
import { type CliIo, helpOnly } from '../io.ts';

export const migrateHelp = `Usage: nightshift migrate

Creates or updates Nightshift's tables: in PostgreSQL when DATABASE_URL is set (schema
DATABASE_SCHEMA, default nightshift), else in the embedded store in NIGHTSHIFT_DATA_DIR
(default .nightshift/data). The bot also does this when it starts.
`;

export async function migrateCommand(
  args: string[],
  io: CliIo,
  env: Record<string, string | undefined>,
): Promise<number> {
  if (helpOnly(args)) {
    io.stdout.write(migrateHelp);
    return 0;
  }
  const config = loadConfig(env);
  const db = await openStore(config);
  try {
    const applied = await migrate(db);
    const where = config.DATABASE_URL
      ? `${redactUrl(config.DATABASE_URL)} (schema ${config.DATABASE_SCHEMA})`
      : `the embedded store in ${config.NIGHTSHIFT_DATA_DIR}`;
    io.stdout.write(
      applied.length === 0
        ? `${where} is up to date\n`
        : `applied migration${applied.length === 1 ? '' : 's'} ${applied.join(', ')} to ${where}\n`,
    );
    return 0;
  } finally {
    await db.close();
  }
}
