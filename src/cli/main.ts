import { availableParallelism } from 'node:os';
import { prestartScanWorkers } from '../evidence/prestart.ts';
import { countExternalMemoryInHeapLimits } from '../gc-tuning.ts';

countExternalMemoryInHeapLimits();

const argv = process.argv.slice(2);
// `analyze` at its default worker count (one worker fewer than cores: the main thread scans too)
// starts its workers before the CLI loads its modules, so their start-up overlaps ours.
if (argv[0] === 'analyze' && !argv.some((a) => /^(--workers(=|$)|-h$|--help$)/.test(a))) {
  prestartScanWorkers(availableParallelism() - 1);
}
const { runCli } = await import('./index.ts');
process.exitCode = await runCli(argv, { stdout: process.stdout, stderr: process.stderr });
// serve has stopped (or given up at its shutdown deadline): a connection that still hangs must
// not keep the process alive.
if (argv[0] === 'serve') process.exit();
