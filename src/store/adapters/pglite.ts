import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { CodedError, ErrorCode, StoreLockedError } from '../../errors.ts';
import { processAlive } from '../../process-alive.ts';
import { assertSchemaName, type Db, type QueryResult } from '../db.ts';

/**
 * PGlite's memory is one WebAssembly.Memory, which grows and never shrinks, so whatever it has
 * once held stays in the process for good. PostgreSQL's defaults size it for a server of its own:
 * 128 MB of shared_buffers alone, touched page by page as the tables grow (a burst of 10,000
 * alerts filled them). The embedded store runs with buffers sized for a bot: its data directory
 * is on the local disk, so a page that does not fit is read back from the kernel's page cache,
 * which is not the bot's memory.
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  /** Default 128MB: the table and index pages kept in memory. */
  shared_buffers: '16MB',
  /** Default 4MB (a 32nd of shared_buffers, at most one WAL segment). */
  wal_buffers: '512kB',
  /** Default 8MB: temporary tables, which the bot does not use. */
  temp_buffers: '1MB',
  /** Default 64MB: CREATE INDEX and VACUUM (migrations). */
  maintenance_work_mem: '16MB',
  /** Default 4MB per sort or hash: kept. */
  work_mem: '4MB',
};

/** The start parameters PGlite runs with: its own defaults, then PGLITE_SETTINGS. */
export function pgliteStartParams(): string[] {
  return [
    ...PGlite.defaultStartParams,
    ...Object.entries(PGLITE_SETTINGS).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
}

/**
 * Embedded PostgreSQL (PGlite) in a data directory, the default store: nothing to install. PGlite
 * takes no lock of its own and a second process on the same directory corrupts it, so this adapter
 * holds a lock file with its pid for as long as it is open, and refuses to open a directory whose
 * lock belongs to a live process. A lock left by a process killed with SIGKILL is taken over.
 *
 * A new data directory is made (initdb) in a child process: PGlite makes it with a second PGlite
 * and initdb's own WebAssembly instance, over 1 GiB at the peak, which would otherwise stay the
 * bot's peak RSS for good (its WebAssembly memory is not given back).
 *
 * `dataDir` undefined opens an in-memory database (tests).
 */
export async function openPglite(dataDir: string | undefined, schema: string): Promise<Db> {
  assertSchemaName(schema);
  const release = dataDir === undefined ? () => {} : lockDataDir(dataDir);
  let pglite: PGlite;
  try {
    if (dataDir !== undefined && !existsSync(join(dataDir, 'PG_VERSION'))) await initdbApart(dataDir);
    pglite = new PGlite(dataDir, { startParams: pgliteStartParams() });
    await pglite.waitReady;
  } catch (error) {
    release();
    throw new CodedError(
      ErrorCode.StoreUnavailable,
      `cannot open the embedded database in ${dataDir}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return fromPglite(pglite, schema, async () => {
    await pglite.close();
    release();
  });
}

/** Makes a new data directory in a child process (pglite-initdb.ts); throws with its stderr. */
async function initdbApart(dataDir: string): Promise<void> {
  // From src/ (type stripping) the script is .ts; from dist/ (the npm package) .js: tsc rewrites
  // imports, not URLs.
  const script = fileURLToPath(
    new URL(import.meta.url.endsWith('.ts') ? './pglite-initdb.ts' : './pglite-initdb.js', import.meta.url),
  );
  const child = spawn(process.execPath, [script, dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-2000);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`initdb exited with ${code}: ${stderr.trim()}`);
}

/**
 * PGlite runs PostgreSQL in single-user mode, which has no autovacuum: without it no table is ever
 * analyzed, and the planner, which then takes a table for empty, kept scanning every queued Slack
 * message (and sorting them) for each message the outbox claimed: 115 ms a claim with 10,000 queued
 * instead of 0.1 ms, and the outbox of a 10,000-alert burst took many minutes to drain. So the
 * adapter does autovacuum's work: once `afterRows` rows were written through it, and at most every
 * `everyMs`, it runs VACUUM (ANALYZE) over the database (its tables and pg-boss's), queued like any
 * other statement, between two of them.
 */
export const PGLITE_VACUUM = {
  /** Rows inserted, updated or deleted through the adapter before the next VACUUM (ANALYZE). */
  afterRows: 500,
  /** Milliseconds at least between two runs. */
  everyMs: 5000,
};

/**
 * A Db over an open PGlite, its tables in `schema`. `onClose` runs after pending work when the Db
 * is closed (the tests share one PGlite and drop the schema instead: initdb takes seconds).
 */
export async function fromPglite(pglite: PGlite, schema: string, onClose: () => Promise<void>): Promise<Db> {
  assertSchemaName(schema);
  await pglite.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}; SET search_path TO ${schema}`);
  // PGlite is one connection: transactions must not interleave with other queries. A queue keeps
  // everything in order; work inside a transaction goes straight through.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => {});
    return next;
  };
  let written = 0;
  let vacuumedAt = 0;
  let vacuuming = false;
  let closed = false;
  const maybeVacuum = () => {
    if (closed || vacuuming || written < PGLITE_VACUUM.afterRows) return;
    if (Date.now() - vacuumedAt < PGLITE_VACUUM.everyMs) return;
    vacuuming = true;
    written = 0;
    void serial(() => pglite.exec('VACUUM (ANALYZE)'))
      .then(
        () => {},
        () => {},
      )
      .finally(() => {
        vacuuming = false;
        vacuumedAt = Date.now();
      });
  };
  const run = async <Row>(
    target: Pick<PGlite, 'query' | 'exec'>,
    text: string,
    values?: readonly unknown[],
  ): Promise<QueryResult<Row>> => {
    let result: QueryResult<Row>;
    if (values === undefined) {
      // Without parameters, several statements may run at once (migrations), as on a real server.
      const results = await target.exec(text);
      const last = results.at(-1);
      result = { rows: (last?.rows ?? []) as Row[], affectedRows: last?.affectedRows ?? 0 };
    } else {
      const one = await target.query<Row>(text, values as unknown[]);
      result = { rows: one.rows, affectedRows: one.affectedRows ?? 0 };
    }
    if (/^\s*(INSERT|UPDATE|DELETE|WITH|MERGE)\b/i.test(text)) {
      written += result.affectedRows ?? 0;
      maybeVacuum();
    }
    return result;
  };
  const db: Db = {
    kind: 'pglite',
    schema,
    pglite,
    executeSql: (text, values) => serial(() => run(pglite, text, values)),
    transaction: (work) =>
      serial(() =>
        pglite.transaction(async (tx) => {
          const inner: Db = {
            kind: 'pglite',
            schema,
            executeSql: (text, values) => run(tx, text, values),
            transaction: (nested) => nested(inner),
            close: async () => {},
          };
          return work(inner);
        }),
      ),
    async close() {
      if (closed) return;
      closed = true;
      await queue;
      await onClose();
    },
  };
  return db;
}

const LOCK_FILE = 'nightshift.lock';

/** Moves a dead holder's lock aside; a live lock moved by mistake is put back (link fails if taken). */
export function takeOverStale(path: string, deadHolder: number): void {
  const aside = `${path}.${process.pid}.${Date.now()}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else took it over first
    throw error;
  }
  const moved = Number.parseInt(readFileSync(aside, 'utf8'), 10);
  if (moved !== deadHolder && Number.isInteger(moved) && processAlive(moved)) {
    try {
      linkSync(aside, path);
    } catch {
      // A third starter took the path meanwhile; the live holder keeps its open database either way.
    }
  }
  unlinkSync(aside);
}

/** Takes the data directory's lock or throws StoreLockedError naming the holder. Returns the release. */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new StoreLockedError(
          holder,
          `another Nightshift (pid ${holder}) is using the embedded database in ${dataDir}; stop it, or point this one at another directory with NIGHTSHIFT_DATA_DIR (two processes on one PGlite directory corrupt it)`,
        );
      }
      // Left by a process that is gone (killed, crashed): take it over, but only that lock. Two
      // starters may both see the dead holder; the lock is moved aside atomically and checked, so
      // the second one cannot remove the lock the first one has just taken in its place.
      takeOverStale(path, holder);
    }
  }
  throw new CodedError(ErrorCode.StoreLocked, `could not take the lock ${path}`);
}
