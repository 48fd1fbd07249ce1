/**
 * The analysis job's own process: forked by analyzeInChild (analyze-child.ts), it takes one
 * request over IPC, runs analyzeFiles on its worker threads and sends back the report, the secrets
 * redaction hid and its peak RSS, or the error's code and message; then it exits. It exits too when
 * the bot that forked it is gone (the IPC channel closes), so an analysis never outlives its bot.
 *
 * Imports only the analyzer: the bot's store, Slack and pg-boss stay out of this process.
 */
import { readFileSync } from 'node:fs';
import { systemClock } from '../clock.ts';
import { asCodedError } from '../errors.ts';
import { countExternalMemoryInHeapLimits } from '../gc-tuning.ts';
import type { ChildReply, ChildRequest } from './analyze-child.ts';
import { analyzeFiles } from './analyze-files.ts';

countExternalMemoryInHeapLimits();

/** Peak RSS in bytes: VmHWM (worker threads included), maxRSS where /proc is missing. */
function peakRssBytes(): number {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib) return Number(kib) * 1024;
  } catch {
    // Not Linux: maxRSS below.
  }
  return process.resourceUsage().maxRSS * 1024;
}

const reply = (message: ChildReply) =>
  new Promise<void>((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });

process.on('disconnect', () => process.exit());
process.once('message', (request: ChildRequest) => {
  void (async () => {
    try {
      let secrets: readonly string[] = [];
      let sentAt = 0;
      const report = await analyzeFiles(request.paths, {
        now: systemClock,
        workers: request.workers,
        ...(request.follow ? { follow: true } : {}),
        onPartial: (partial) => {
          void reply({ type: 'partial', ...partial });
        },
        onSecrets: (found) => {
          secrets = found;
        },
        onProgress: (done, total) => {
          // At most a few messages a second: the bot forwards them, it does not need each chunk.
          const now = Date.now();
          if (now - sentAt < 250 && done < total) return;
          sentAt = now;
          void reply({ type: 'progress', done, total });
        },
      });
      await reply({ type: 'done', report, secrets: [...secrets], peakRssBytes: peakRssBytes() });
    } catch (error) {
      const coded = asCodedError(error);
      await reply({ type: 'error', code: coded.code, message: coded.message });
    }
    process.disconnect();
  })();
});
