import pg from 'pg';

/**
 * Holds a run's time limit on the server from a second connection: whatever the statement does
 * to its own settings (or however the server ignores a closed client socket while it sleeps or
 * waits on a lock), its backend is cancelled when the limit passes, terminated if it is still
 * running a little later, and at the end is checked to be gone. The second connection is opened
 * before anything runs, so it exists when it is needed even on a server near max_connections.
 * Same role as the run's: PostgreSQL lets a role cancel and terminate its own backends.
 */
export interface BackendWatchdogOptions {
  url: string;
  /** The run's backend (pg_backend_pid() on its connection). */
  pid: number;
  /** After this many milliseconds from start(), the backend is cancelled. */
  limitMs: number;
  /** After the cancel, this long before the backend is terminated. */
  terminateAfterMs: number;
  connectTimeoutMs: number;
  /** Told what the watchdog did (cancelled, terminated), for the run's error. */
  onAct?: (what: 'cancelled' | 'terminated') => void;
}

export class BackendWatchdog {
  readonly #options: BackendWatchdogOptions;
  readonly #client: pg.Client;
  #timers: NodeJS.Timeout[] = [];
  #acts: Promise<unknown>[] = [];
  #fired: 'cancelled' | 'terminated' | undefined;

  private constructor(options: BackendWatchdogOptions, client: pg.Client) {
    this.#options = options;
    this.#client = client;
  }

  /** Connects the watching connection; throws when it cannot (then nothing may run). */
  static async connect(options: Omit<BackendWatchdogOptions, 'pid'>): Promise<BackendWatchdog> {
    const client = new pg.Client({
      connectionString: options.url,
      connectionTimeoutMillis: options.connectTimeoutMs,
      application_name: 'nightshift-watchdog',
    });
    client.on('error', () => {});
    try {
      await client.connect();
      // Its own statements must never wait long, whatever the role's defaults.
      await client.query("SET statement_timeout = '5s'");
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    return new BackendWatchdog({ ...options, pid: 0 }, client);
  }

  /** What the watchdog had to do, if anything. */
  get fired() {
    return this.#fired;
  }

  /** Starts the clock for the backend `pid`. */
  start(pid: number): void {
    this.#options.pid = pid;
    const { limitMs, terminateAfterMs } = this.#options;
    this.#timers.push(
      setTimeout(() => this.#act('cancelled', 'pg_cancel_backend'), limitMs),
      setTimeout(() => this.#act('terminated', 'pg_terminate_backend'), limitMs + terminateAfterMs),
    );
  }

  #act(what: 'cancelled' | 'terminated', fn: 'pg_cancel_backend' | 'pg_terminate_backend') {
    const act = this.#client
      .query<{ ok: boolean }>(
        `SELECT pg_catalog.${fn}(pid) AS ok FROM pg_catalog.pg_stat_activity WHERE pid = $1 AND state <> 'idle'`,
        [this.#options.pid],
      )
      .then((result) => {
        if (result.rows[0]?.ok) {
          this.#fired = what;
          this.#options.onAct?.(what);
        }
      })
      .catch(() => {});
    this.#acts.push(act);
  }

  /**
   * After the run's connection was closed: waits until its backend is gone from
   * pg_stat_activity, terminates it when it is still there after `goneWithinMs`, and closes.
   */
  async stop(goneWithinMs: number): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    await Promise.all(this.#acts);
    try {
      if (this.#options.pid === 0) return;
      const until = Date.now() + goneWithinMs;
      for (;;) {
        const { rows } = await this.#client.query(
          'SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1',
          [this.#options.pid],
        );
        if (rows.length === 0) return;
        if (Date.now() >= until) {
          await this.#client.query('SELECT pg_catalog.pg_terminate_backend($1)', [this.#options.pid]);
          this.#fired = 'terminated';
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } catch {
      // The watching connection itself failed: nothing more it can do.
    } finally {
      await this.#client.end().catch(() => {});
    }
  }
}
