import type { Db } from './db.ts';

/**
 * Runs `work` under a savepoint of the transaction `tx`. When it throws an error `undoIf` accepts,
 * the savepoint is rolled back (the transaction stays usable: what came before it is kept) and
 * the error is rethrown for the caller to record; any other error is rethrown as it is, the
 * transaction left to fail.
 */
export async function underSavepoint<T>(
  tx: Db,
  work: () => Promise<T>,
  undoIf: (error: unknown) => boolean,
): Promise<T> {
  await tx.executeSql('SAVEPOINT work');
  try {
    const result = await work();
    await tx.executeSql('RELEASE SAVEPOINT work');
    return result;
  } catch (error) {
    if (undoIf(error)) await tx.executeSql('ROLLBACK TO SAVEPOINT work');
    throw error;
  }
}
