import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { CodedError, ErrorCode, StoreLockedError } from '../../errors.ts';
import { assertSchemaName, type Db, type QueryResult } from '../db.ts';

/**
 * Embedded PostgreSQL (PGlite) in a data directory, the default store: nothing to install. PGlite
 * takes no lock of its own and a second process on the same directory corrupts it, so this adapter
 * holds a lock file with its pid for as long as it is open, and refuses to open a directory whose
 * lock belongs to a live process. A lock left by a process killed with SIGKILL is taken over.
 *
 * `dataDir` undefined opens an in-memory database (tests).
 */
export async function openPglite(dataDir: string | undefined, schema: string): Promise<Db> {
  assertSchemaName(schema);
  const release = dataDir === undefined ? () => {} : lockDataDir(dataDir);
  let pglite: PGlite;
  try {
    pglite = dataDir === undefined ? new PGlite() : new PGlite(dataDir);
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
  const run = async <Row>(
    target: Pick<PGlite, 'query' | 'exec'>,
    text: string,
    values?: readonly unknown[],
  ): Promise<QueryResult<Row>> => {
    if (values === undefined) {
      // Without parameters, several statements may run at once (migrations), as on a real server.
      const results = await target.exec(text);
      const last = results.at(-1);
      return { rows: (last?.rows ?? []) as Row[], affectedRows: last?.affectedRows ?? 0 };
    }
    const result = await target.query<Row>(text, values as unknown[]);
    return { rows: result.rows, affectedRows: result.affectedRows ?? 0 };
  };
  let closed = false;
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

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
  if (moved !== deadHolder && Number.isInteger(moved) && alive(moved)) {
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
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
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
