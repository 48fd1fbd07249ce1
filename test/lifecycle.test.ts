import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Component, startComponents } from '../src/lifecycle.ts';
import { createLogger } from '../src/log.ts';

const log = createLogger({ level: 'silent' });

/** A part that records its starts and stops in `events`, and fails where it is told to. */
function part(name: string, events: string[], fail: { start?: boolean; stop?: boolean } = {}): Component {
  return {
    name,
    async start() {
      events.push(`start ${name}`);
      if (fail.start) throw new Error(`${name} would not start`);
    },
    async stop() {
      events.push(`stop ${name}`);
      if (fail.stop) throw new Error(`${name} would not stop`);
    },
  };
}

describe('startComponents', () => {
  it('starts the parts in order and stops them in reverse, once however often stop is called', async () => {
    const events: string[] = [];
    const started = await startComponents([part('a', events), part('b', events), part('c', events)], log);
    assert.deepEqual(events, ['start a', 'start b', 'start c']);
    await Promise.all([started.stop(), started.stop()]);
    await started.stop();
    assert.deepEqual(events.slice(3), ['stop c', 'stop b', 'stop a']);
  });

  it('on a failed start stops the started parts in reverse, not the failed one nor those after it', async () => {
    const events: string[] = [];
    const parts = [
      part('a', events),
      part('b', events),
      part('c', events, { start: true }),
      part('d', events),
    ];
    await assert.rejects(startComponents(parts, log), /c would not start/);
    assert.deepEqual(events, ['start a', 'start b', 'start c', 'stop b', 'stop a']);
  });

  it('a part that fails to stop does not keep the others open; its error is thrown after', async () => {
    const events: string[] = [];
    const started = await startComponents(
      [part('a', events), part('b', events, { stop: true }), part('c', events)],
      log,
    );
    await assert.rejects(started.stop(), /b would not stop/);
    assert.deepEqual(events.slice(3), ['stop c', 'stop b', 'stop a']);
  });

  it('a failed start whose clean-up also fails throws the start error', async () => {
    const events: string[] = [];
    const parts = [part('a', events, { stop: true }), part('b', events, { start: true })];
    await assert.rejects(startComponents(parts, log), /b would not start/);
    assert.deepEqual(events, ['start a', 'start b', 'stop a']);
  });
});
