import type { Logger } from './log.ts';

/**
 * One long-lived part of the bot (the store, the queue, the HTTP server or Slack app, the SSH
 * pool, the workers, the sweeper, the outbox pump). `start` brings it up; `stop` takes down what
 * `start` brought up, and is only called on a part whose `start` returned: a `start` that fails
 * undoes what it had done before it throws.
 */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface Started {
  /** Stops every started part in reverse order, once; later calls wait for the first. */
  stop(): Promise<void>;
}

/**
 * Starts the parts in order, as pg-boss's start() and Bolt's App.start() do theirs. When one fails,
 * the parts already started are stopped in reverse order and its error is thrown: nothing stays
 * open (a listening port, SSH connections, a pool) behind a bot that did not start.
 */
export async function startComponents(components: readonly Component[], log: Logger): Promise<Started> {
  const started: Component[] = [];
  const stopAll = () => stopInReverse(started, log);
  for (const component of components) {
    try {
      await component.start();
    } catch (error) {
      log.error({ err: error, component: component.name }, 'could not start; stopping what had started');
      // A part that also fails to stop was logged; the error that stopped the start is the one thrown.
      await stopAll().catch(() => {});
      throw error;
    }
    started.push(component);
  }
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
  };
}

/**
 * Stops the parts last to first. A part that fails to stop is logged and the rest still stop; the
 * first such error is thrown once all have been tried, so the caller knows the stop was not clean.
 */
async function stopInReverse(started: readonly Component[], log: Logger): Promise<void> {
  let first: unknown;
  for (const component of [...started].reverse()) {
    try {
      await component.stop();
    } catch (error) {
      log.error({ err: error, component: component.name }, 'could not stop cleanly');
      first ??= error;
    }
  }
  if (first !== undefined) throw first;
}
