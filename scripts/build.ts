/**
 * Builds dist/, what the npm package runs: Node does not strip types under node_modules, so the
 * package ships JavaScript. tsc compiles src/ (tsconfig.build.json: .ts imports rewritten to .js,
 * source maps), then the files the code reads beside itself are copied to the same place under
 * dist/ (strings.wasm; tsc copies the JSON it imports). migrations/ and manifest.yml are read from
 * the package root, which is as far above dist/ as above src/. A checkout runs src/ as it is and
 * needs no build; `npm pack` runs this (prepack).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
/** Read at run time relative to the module that reads them (new URL(..., import.meta.url)). */
const ASSETS = /\.wasm$/;

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (run.status !== 0) {
  process.stderr.write(`build: tsc failed (${run.status ?? run.signal})\n`);
  process.exit(1);
}
let copied = 0;
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !ASSETS.test(entry.name)) continue;
  const from = join(entry.parentPath, entry.name);
  const to = join(dist, from.slice(src.length));
  cpSync(from, to);
  copied++;
  process.stdout.write(`build: copied ${from.slice(root.length)} to ${to.slice(root.length)}\n`);
}
if (copied === 0) {
  process.stderr.write(`build: no asset matched ${ASSETS} under src/\n`);
  process.exit(1);
}
