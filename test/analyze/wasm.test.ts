import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;

it('the committed strings.wasm is what strings.c builds to (run `npm run build:wasm` when it is not)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-wasm-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'strings.wasm');
  execFileSync('bash', ['scripts/build-wasm.sh', 'src/analyze/wasm/strings.c', out], { cwd: root });
  const committed = readFileSync(join(root, 'src/analyze/wasm/strings.wasm'));
  assert.ok(readFileSync(out).equals(committed), 'src/analyze/wasm/strings.wasm is stale');
});
