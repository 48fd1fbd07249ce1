/**
 * The outbox's timings (claims, retries, concurrency), apart from the drain so the edits
 * (thread-edits.ts) and the fleet message (fleet-message.ts) share them without importing it.
 */

export interface OutboxOptions {
  /** Attempts before a message is marked dead. Default 10 (about half an hour of failures). */
  maxAttempts: number;
  /** Delay before the first retry, in milliseconds; it doubles with each attempt. Default 5000. */
  retryBaseMs: number;
  /** Longest delay between two attempts, in milliseconds. Default 600000 (10 minutes). */
  retryMaxMs: number;
  /**
   * How long a claim holds after its last renewal before another poster may take the message, in
   * milliseconds. Default 120000 (2 minutes): six renewals missed.
   */
  claimTimeoutMs: number;
  /** How often a poster renews its claim while the post is in flight, in milliseconds. Default 20000. */
  claimRenewMs: number;
  /**
   * Messages posted at once, each of a different thread (a thread's own stay in order), so a slow
   * or failing thread does not hold up the others. Default 4; Slack's 429s pause them all.
   */
  concurrency: number;
}

/** The defaults; not read from the environment (tests pass their own). */
export const OUTBOX_DEFAULTS: OutboxOptions = {
  maxAttempts: 10,
  retryBaseMs: 5000,
  retryMaxMs: 600_000,
  claimTimeoutMs: 120_000,
  claimRenewMs: 20_000,
  concurrency: 4,
};

/** How long a message waits after its `attempts`-th failed attempt (1, 2, ...): doubling, capped. */
export function retryDelayMs(
  attempts: number,
  options: Pick<OutboxOptions, 'retryBaseMs' | 'retryMaxMs'>,
): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30);
  return Math.min(options.retryBaseMs * 2 ** exponent, options.retryMaxMs);
}

/** A pending message older than this makes the outbox "stuck" in the log, /metrics and doctor. */
export const OUTBOX_STUCK_AFTER_S = 60;

/**
 * Keeps a claim: calls `renew` every `everyMs` until the returned function is called. A renewal
 * that fails, or answers false (the claim was taken over), is told to `failed` or `lost`, unless
 * the claim was let go meanwhile.
 */
export function keepClaim(
  everyMs: number,
  renew: () => Promise<unknown>,
  heard: { failed: (error: unknown) => void; lost?: () => void },
): () => void {
  let held = true;
  const timer = setInterval(() => {
    renew().then(
      (kept) => {
        if (held && kept === false) heard.lost?.();
      },
      (error: unknown) => {
        if (held) heard.failed(error);
      },
    );
  }, everyMs);
  timer.unref();
  return () => {
    held = false;
    clearInterval(timer);
  };
}
