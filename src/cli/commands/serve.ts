import { loadConfig } from '../../config/env.ts';
import { startBot } from '../../main.ts';
import { type CliIo, helpOnly } from '../io.ts';

export const serveHelp = `Usage: nightshift serve

Runs the bot: alert webhooks (POST /alerts/alertmanager, /alerts/grafana, /alerts/generic),
/healthz, /readyz and /metrics on PORT (default 3000), and the Slack app when SLACK_BOT_TOKEN is
set. Configuration comes from the environment; see the README.
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
  const bot = await startBot({ config: loadConfig(env) });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await bot.close();
  return 0;
}
