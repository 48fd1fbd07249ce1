import { readFileSync } from 'node:fs';
import { asCodedError, CodedError, ErrorCode } from '../errors.ts';
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
  help [COMMAND]        show this help, or a command's

Options:
  -h, --help            show this help
  -v, --version         print the version

Run \`nightshift help <command>\` or \`nightshift <command> --help\` for a command's options.
`;

const COMMANDS = ['analyze', 'migrate', 'serve', 'doctor', 'collect'] as const;
type Command = (typeof COMMANDS)[number];

/** Each command's help text; all but analyze's are loaded on demand, as the commands are. */
async function commandHelp(command: Command): Promise<string> {
  switch (command) {
    case 'analyze':
      return analyzeHelp;
    case 'migrate':
      return (await import('./commands/migrate.ts')).migrateHelp;
    case 'serve':
      return (await import('./commands/serve.ts')).serveHelp;
    case 'doctor':
      return (await import('./commands/doctor.ts')).doctorHelp;
    case 'collect':
      return (await import('./commands/collect.ts')).collectHelp;
  }
}

/** The version in package.json, the one npm installed. */
export function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

const isCommand = (name: string | undefined): name is Command =>
  (COMMANDS as readonly string[]).includes(name ?? '');

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
      case '--version':
      case '-v':
      case 'version':
        io.stdout.write(`nightshift ${version()}\n`);
        return 0;
      case 'help': {
        const [topic, ...extra] = rest;
        if (topic === undefined) {
          io.stdout.write(help);
          return 0;
        }
        if (!isCommand(topic) || extra.length > 0)
          throw new CodedError(
            ErrorCode.Usage,
            isCommand(topic)
              ? `help takes one COMMAND, got ${rest.length}`
              : `help: no command "${topic}" (they are: ${COMMANDS.join(', ')})`,
          );
        io.stdout.write(await commandHelp(topic));
        return 0;
      }
      case undefined:
      case '--help':
      case '-h':
        io.stdout.write(help);
        return command === undefined ? 2 : 0;
      default:
        io.stderr.write(
          `nightshift: unknown command "${command}"${command.startsWith('-') ? ' (options go after the command)' : ''}\n\n${help}`,
        );
        return 2;
    }
  } catch (error) {
    const coded = asCodedError(error);
    const usage =
      coded.code === ErrorCode.Usage ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
    io.stderr.write(`nightshift: ${coded.message}\n`);
    if (usage) {
      const text = isCommand(command) ? await commandHelp(command) : help;
      io.stderr.write(`\n${text}`);
    }
    return usage ? 2 : 1;
  }
}
