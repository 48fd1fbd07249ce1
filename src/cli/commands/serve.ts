import { loadSettings } from '../../config/settings.ts';
import { SHUTDOWN_DEADLINE_MS, startBot } from '../../main.ts';
import { keepWasmOnBaselineCompiler } from '../../store/adapters/pglite-compiler.ts';
import { type CliIo, helpOnly } from '../io.ts';

export const serveHelp = `Usage: nightshift serve

Runs the bot: alert webhooks (POST /alerts/alertmanager, /alerts/grafana, /alerts/generic),
/healthz, /readyz and /metrics on PORT (default 3000), and the Slack app when SLACK_BOT_TOKEN is
set. Configuration comes from the environment; see the README. On SIGTERM or SIGINT it stops
taking work, finishes or gives back what is in flight, and exits within 20 s.
`;

export async function serveCommand(
  args: string[],
  io: CliIo,
  env: Record<string, string | undefined>,
): Promise<number> {
  if (helpOnly(args)) {
    io.stdout.write(serveHelp);
    return 0;
  }
  const settings = loadSettings(env);
  // The embedded store: PGlite's WebAssembly stays off V8's optimizing compiler in this process
  // (its peak memory); the analysis jobs, which want that compiler, run in processes of their own.
  if (!settings.config.DATABASE_URL) keepWasmOnBaselineCompiler();
  const bot = await startBot(settings);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  // Shutdown has a deadline: stop taking work, finish or give back what is in flight, and exit
  // within SHUTDOWN_DEADLINE_MS even when a call hangs (the CLI entry then exits the process).
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    bot.close().then(
      () => true,
      (error: unknown) => {
        io.stderr.write(`nightshift: error while stopping: ${(error as Error).message}\n`);
        return true;
      },
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), SHUTDOWN_DEADLINE_MS);
    }),
  ]);
  clearTimeout(timer);
  if (!closed) {
    io.stderr.write(
      `nightshift: stopped at the ${SHUTDOWN_DEADLINE_MS / 1000} s shutdown deadline with work in flight\n`,
    );
    return 1;
  }
  return 0;
}
