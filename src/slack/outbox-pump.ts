import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { outboxBacklog } from '../store/outbox.ts';
import { type DrainControl, drainOutbox, releaseClaims } from './outbox.ts';
import { OUTBOX_STUCK_AFTER_S, type OutboxOptions } from './outbox-options.ts';
import type { SlackPoster } from './poster.ts';

/**
 * Drains the outbox when told something was queued (kick), and every few seconds to retry what
 * failed (a failed message waits out its retry delay, see drainOutbox). Never two drains at once
 * in one process; other processes are kept apart by the claims. Every interval it also looks at
 * the oldest message still to post, and logs a warning (at most once a minute) while one has
 * waited longer than OUTBOX_STUCK_AFTER_S: a stuck outbox is heard of, not found later.
 */
export class OutboxPump {
  private running: Promise<void> | undefined;
  private again = false;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private lastStuckWarning = 0;
  private readonly held = new Map<number, string>();
  private readonly db: Db;
  private readonly slack: SlackPoster;
  private readonly log: Logger;
  private readonly now: Clock;
  private readonly options: Partial<OutboxOptions>;

  /** `options` default to OUTBOX_DEFAULTS (see outbox-options.ts). */
  constructor(db: Db, slack: SlackPoster, log: Logger, now: Clock, options: Partial<OutboxOptions> = {}) {
    this.db = db;
    this.slack = slack;
    this.log = log;
    this.now = now;
    this.options = options;
  }

  start(intervalMs = 5000): void {
    this.timer = setInterval(() => {
      this.kick();
      void this.checkStuck();
    }, intervalMs);
    this.timer.unref();
    this.kick();
  }

  kick(): Promise<void> {
    if (this.stopping) return this.running ?? Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const control: DrainControl = { stopping: () => this.stopping, held: this.held };
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await drainOutbox(this.db, this.slack, this.log, this.now, this.options, control);
        } catch (error) {
          this.log.error({ err: error }, 'outbox drain failed');
        }
      } while (this.again && !this.stopping);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Warns while the oldest message to post has waited too long; returns its age in seconds. */
  async checkStuck(now = Date.now()): Promise<number> {
    const age = await outboxBacklog(this.db).then(
      (b) => b.oldestSeconds,
      () => 0,
    );
    if (age > OUTBOX_STUCK_AFTER_S && now - this.lastStuckWarning >= 60_000) {
      this.lastStuckWarning = now;
      this.log.warn(
        { oldestPendingSeconds: Math.round(age) },
        `the Slack outbox is stuck: a message has waited ${Math.round(age)} s to be posted`,
      );
    }
    return age;
  }

  /**
   * Stops taking messages; waits for the posts in flight up to `deadlineMs`, then gives their
   * claims back (another process, or this bot's next start, posts them after looking for them in
   * Slack first) and returns. Never waits longer than the deadline.
   */
  async stop(deadlineMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (!this.running) return;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      this.running.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    if (!finished) {
      this.log.warn(
        { inFlight: this.held.size },
        'stopping with Slack posts in flight; their claims are given back',
      );
      await releaseClaims(this.db, this.held).catch((error: unknown) =>
        this.log.warn({ err: error }, 'could not give the outbox claims back; they expire on their own'),
      );
    }
  }
}
