import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;

for (const name of ['strings', 'overflow', 'merge']) {
  it(`the committed ${name}.wasm is what ${name}.c builds to (run \`npm run build:wasm\` when it is not)`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'nightshift-wasm-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, `${name}.wasm`);
    execFileSync('bash', ['scripts/build-wasm.sh', `src/analyze/wasm/${name}.c`, out], { cwd: root });
    const committed = readFileSync(join(root, `src/analyze/wasm/${name}.wasm`));
    assert.ok(readFileSync(out).equals(committed), `src/analyze/wasm/${name}.wasm is stale`);
  });
}
