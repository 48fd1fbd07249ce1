import { resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { renderReport } from '../../analyze/render.ts';
import { systemClock } from '../../clock.ts';
import { CodedError, ErrorCode } from '../../errors.ts';
import { analyzeFiles } from '../../evidence/analyze-files.ts';
import type { CliIo } from '../io.ts';
import { progressBar } from '../progress.ts';

export const analyzeHelp = `Usage: nightshift analyze [options] FILE|DIR...

Reads core dumps (raw ELF cores, gzip, the tar stream of \`docker cp <container>:<path> -\`,
tar inside gzip; told apart by content, not name), finds what killed each process and the
strings they share, and prints a report. Every dump given at once is one set for correlation.
Directories are read recursively.

Options:
  --json           print the report as JSON (schema: ReportSchema in src/analyze/report-schema.ts)
  --workers N      worker threads (default: the number of CPU cores; 0 = none)
  --no-progress    never draw the progress bar (it is drawn on stderr only when it is a terminal)
  --stats          print {"stats":{bytes,elapsedMs,maxRssBytes}} as one line on stderr at the end
  -h, --help       show this help

Exit status: 0 when at least one dump was analysed (files that could not be are listed),
1 when none could be, 2 on a usage error.
`;

export async function analyzeCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      workers: { type: 'string' },
      'no-progress': { type: 'boolean', default: false },
      stats: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    io.stdout.write(analyzeHelp);
    return 0;
  }
  // The flags first: `--workers examples/` took the directory as the count, and is about --workers.
  let workers: number | undefined;
  if (values.workers !== undefined) {
    workers = /^\d+$/.test(values.workers) ? Number(values.workers) : Number.NaN;
    if (!Number.isInteger(workers) || workers < 0 || workers > 64) {
      throw new CodedError(
        ErrorCode.Usage,
        `--workers must be a whole number from 0 to 64, got "${values.workers}"${positionals.length === 0 ? ' (--workers takes a value: --workers N FILE|DIR...)' : ''}`,
      );
    }
  }
  if (positionals.length === 0)
    throw new CodedError(ErrorCode.Usage, 'analyze needs at least one FILE or DIR');
  const started = performance.now();
  const bar = values['no-progress'] ? undefined : progressBar(io.stderr);
  const report = await analyzeFiles(positionals, {
    now: systemClock,
    mainThreadScans: true,
    ...(workers !== undefined ? { workers } : {}),
    ...(bar ? { onProgress: (done, total) => bar.update(done, total) } : {}),
  });
  bar?.done();
  // A path that yielded neither a dump nor an error held no files at all: say so by name.
  const under = (path: string, file: string) => {
    const [dir, inside] = [resolve(path), resolve(file)];
    return inside === dir || inside.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
  };
  const empty = positionals.filter(
    (path) => ![...report.dumps, ...report.errors].some((d) => under(path, d.file)),
  );
  for (const path of empty) io.stderr.write(`nightshift: no core files found in ${path}\n`);
  if (report.dumps.length === 0 && report.errors.length === 0 && !values.json) return 1;
  // Printed as built, not parsed with ReportSchema: the report's type is the schema's, and loading
  // zod would add a tenth of a second to every run. The CLI tests check that what is printed
  // parses to itself, so the schema and the output cannot drift apart.
  if (values.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else io.stdout.write(renderReport(report));
  if (values.stats) {
    const stats = {
      bytes: report.totals.bytes,
      elapsedMs: Math.round(performance.now() - started),
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
    };
    io.stderr.write(`${JSON.stringify({ stats })}\n`);
  }
  return report.dumps.length > 0 ? 0 : 1;
}
