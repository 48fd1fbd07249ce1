import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { byKey, type EvidenceSnapshot, evidenceKey } from '../../src/analyze/evidence.ts';
import { newOverflowTable } from '../../src/analyze/wasm/overflow-wasm.ts';
import { compactRuns, resolveOverflow } from '../../src/evidence/overflow.ts';
import { newSpillConfig, RunReader, SpillStore } from '../../src/evidence/spill.ts';

const root = mkdtempSync(join(tmpdir(), 'nightshift-spill-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A run of the WebAssembly table holding `n` URLs from `from` on, and its keys. */
function tableRun(from: number, n: number): { run: Uint8Array; keys: string[] } {
  const table = newOverflowTable();
  assert.ok(table, 'overflow.wasm loads');
  const keys: string[] = [];
  for (let i = from; i < from + n; i++) {
    const value = `https://cdn${i % 5}.example.org/items/${i}/${'p'.repeat(i % 40)}`;
    assert.ok(table.add('url', value, 1 + (i % 3), 'ascii'));
    keys.push(evidenceKey('url', value));
  }
  return { run: table.run(), keys: keys.sort(byKey) };
}

function keysOf(path: string): string[] {
  const reader = new RunReader(path);
  const keys: string[] = [];
  while (reader.next()) keys.push(reader.key);
  return keys;
}

function snapshotOf(runs: string[]): EvidenceSnapshot {
  return { items: [], redactions: 0, dropped: 0, strings: 0, runs, unlistedElsewhere: [], secrets: [] };
}

describe('run files written again in place (recycleRuns)', () => {
  it("writes a thread's next runs over the files its merge took, each cut to its own length", async () => {
    const dir = mkdtempSync(join(root, 'reuse-'));
    const config = newSpillConfig(dir, 2 ** 40);
    const store = new SpillStore(config);
    const a = tableRun(0, 6_000);
    const b = tableRun(6_000, 6_000);
    const runs = [store.writeRun(a.run)!, store.writeRun(b.run)!];
    const [merged] = await compactRuns(runs, config);
    assert.deepEqual(keysOf(merged!), [...a.keys, ...b.keys].sort(byKey));
    // The merged runs stay, to be written over: no file made for the next two.
    assert.equal(readdirSync(dir).length, 3);
    const small = tableRun(50_000, 40);
    const c = store.writeRun(small.run)!;
    const d = store.writeRun(b.run)!;
    assert.deepEqual(new Set([c, d]), new Set(runs), 'the next runs go into the files merged');
    assert.equal(statSync(c).size, small.run.length, 'cut to the new run, nothing of the old one after it');
    assert.deepEqual(keysOf(c), small.keys);
    assert.deepEqual(keysOf(d), b.keys);
    // None left to take: a new file.
    const e = store.writeRun(small.run)!;
    assert.ok(!runs.includes(e) && e !== merged);
    assert.equal(readdirSync(dir).length, 4);
  });

  it('makes a new file when a file held for reuse is gone, and loses nothing', async () => {
    const dir = mkdtempSync(join(root, 'gone-'));
    const config = newSpillConfig(dir, 2 ** 40);
    const store = new SpillStore(config);
    const runs = [store.writeRun(tableRun(0, 500).run)!, store.writeRun(tableRun(500, 500).run)!];
    await compactRuns(runs, config);
    for (const path of runs) rmSync(path);
    const next = tableRun(9_000, 300);
    const path = store.writeRun(next.run);
    assert.ok(path, 'written');
    assert.ok(!runs.includes(path));
    assert.deepEqual(keysOf(path), next.keys);
  });

  it('leaves nothing behind once the overflow is resolved: the files held for reuse are deleted', async () => {
    const dir = mkdtempSync(join(root, 'resolve-'));
    const config = newSpillConfig(dir, 2 ** 40);
    const store = new SpillStore(config);
    const runs = [store.writeRun(tableRun(0, 800).run)!, store.writeRun(tableRun(800, 800).run)!];
    const compacted = await compactRuns(runs, config);
    assert.equal(readdirSync(dir).length, 3);
    await resolveOverflow(
      [snapshotOf(compacted), snapshotOf([store.writeRun(tableRun(400, 800).run)!])],
      config,
    );
    assert.deepEqual(readdirSync(dir), []);
  });
});
