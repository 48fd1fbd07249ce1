import { asCodedError, ErrorCode } from '../errors.ts';
import { analyzeCommand, analyzeHelp } from './commands/analyze.ts';
import type { CliIo } from './io.ts';

/**
 * The CLI's one error sink: commands throw coded errors, this maps them to words on stderr and an
 * exit status. Nothing else in the codebase decides how the process ends.
 */

export const help = `Usage: nightshift <command> [options]

Commands:
  analyze FILE|DIR...   analyse core dumps and print what killed them and what they share
  migrate               create or update the database tables (PGlite, or DATABASE_URL)
  serve                 run the bot: alert webhooks, health, metrics, and Slack when configured
  doctor                check each configured part (database, Slack, Anthropic) in plain words
  collect HOST          run the read-only collectors on a host over SSH and print the findings

Run \`nightshift <command> --help\` for a command's options.
`;

export async function runCli(
  argv: string[],
  io: CliIo,
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'analyze':
        return await analyzeCommand(rest, io);
      case 'serve': {
        const { serveCommand } = await import('./commands/serve.ts');
        return await serveCommand(rest, io, env);
      }
      case 'collect': {
        const { collectCommand } = await import('./commands/collect.ts');
        return await collectCommand(rest, io, env);
      }
      case 'doctor': {
        const { doctorCommand } = await import('./commands/doctor.ts');
        return await doctorCommand(rest, io, env);
      }
      case 'migrate': {
        // Loaded on demand: `analyze` should not pay for zod, pg and PGlite at start-up.
        const { migrateCommand } = await import('./commands/migrate.ts');
        return await migrateCommand(rest, io, env);
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.stdout.write(help);
        return command === undefined ? 2 : 0;
      default:
        io.stderr.write(`nightshift: unknown command "${command}"\n\n${help}`);
        return 2;
    }
  } catch (error) {
    const coded = asCodedError(error);
    const usage =
      coded.code === ErrorCode.Usage ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
    io.stderr.write(`nightshift: ${coded.message}\n`);
    if (usage && command === 'analyze') io.stderr.write(`\n${analyzeHelp}`);
    return usage ? 2 : 1;
  }
}
