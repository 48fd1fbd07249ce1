import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/**
 * What a test opened, closed when it ends, whether it passed or failed: the try/finally every
 * test wrote around its database, queue and directories.
 */

const stacks = new WeakMap<TestContext, Array<() => unknown>>();

/**
 * Runs `stop` when the test `t` ends. Later registrations run first (node:test's own `t.after`
 * runs hooks in the order they were added), so a queue opened on a database stops before the
 * database closes. Every stop runs even when one before it throws; the first error fails the test.
 */
export function atEnd(t: TestContext, stop: () => unknown): void {
  let stack = stacks.get(t);
  if (!stack) {
    const own: Array<() => unknown> = [];
    stacks.set(t, own);
    t.after(async () => {
      let failure: unknown;
      for (const next of own.reverse()) {
        try {
          await next();
        } catch (error) {
          failure ??= error;
        }
      }
      if (failure !== undefined) throw failure;
    });
    stack = own;
  }
  stack.push(stop);
}

/** A new directory under the system's temporary one, removed with what is in it when `t` ends. */
export function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  atEnd(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
