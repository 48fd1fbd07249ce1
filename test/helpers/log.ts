import { createLogger, type Logger } from '../../src/log.ts';

/** A logger (the bot's own, pino) whose records the test can read, at `level` and above. */
export function capturingLogger(level = 'debug'): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const log = createLogger({
    level,
    destination: { write: (line: string) => void records.push(JSON.parse(line)) },
  });
  return { log, records };
}
