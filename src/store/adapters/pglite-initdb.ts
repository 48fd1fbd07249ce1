/**
 * Makes a new PGlite data directory and exits: `node pglite-initdb.ts <dataDir>`. Run by
 * openPglite in a child process, so initdb's memory (a second PGlite and initdb's WebAssembly,
 * over 1 GiB at the peak) is given back when it exits instead of staying the bot's peak RSS. The
 * caller holds the data directory's lock.
 */
import { PGlite } from '@electric-sql/pglite';
import { pgliteStartParams } from './pglite.ts';

const dataDir = process.argv[2];
if (!dataDir) {
  process.stderr.write('usage: pglite-initdb.ts <dataDir>\n');
  process.exitCode = 2;
} else {
  const pglite = await PGlite.create(dataDir, { startParams: pgliteStartParams() });
  await pglite.close();
}
