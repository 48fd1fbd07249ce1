import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { drainOutbox, type OutboxOptions, type SlackPoster } from './outbox.ts';

/**
 * Drains the outbox when told something was queued (kick), and every few seconds to retry what
 * failed (a failed message waits out its retry delay, see drainOutbox). Never two drains at once
 * in one process; other processes are kept apart by the claims.
 */
export class OutboxPump {
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly db: Db;
  private readonly slack: SlackPoster;
  private readonly log: Logger;
  private readonly options: Partial<OutboxOptions>;

  /** `options` default to OUTBOX_DEFAULTS (see outbox.ts). */
  constructor(db: Db, slack: SlackPoster, log: Logger, options: Partial<OutboxOptions> = {}) {
    this.db = db;
    this.slack = slack;
    this.log = log;
    this.options = options;
  }

  start(intervalMs = 5000): void {
    this.timer = setInterval(() => this.kick(), intervalMs);
    this.timer.unref();
    this.kick();
  }

  kick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await drainOutbox(this.db, this.slack, this.log, undefined, this.options);
        } catch (error) {
          this.log.error({ err: error }, 'outbox drain failed');
        }
      } while (this.again);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
