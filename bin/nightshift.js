#!/usr/bin/env node
// The npm package's command: checks the Node.js version, then runs dist/cli/main.js (tsc's build
// of src/, made by `npm pack`). A checkout runs src/ through bin/nightshift instead, with no build.
// Written to parse on old Node.js (no static import, no top-level await, no ?? or ||=) so an old one
// gets the message below rather than a syntax error.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `nightshift: needs Node.js 24 or newer; this is ${process.version} (${process.execPath}).\n` +
      'Install Node.js 24 (https://nodejs.org/) and put it first on PATH.\n',
  );
  process.exitCode = 2;
} else {
  // As bin/nightshift does: Node caches compiled modules here, which halves start-up.
  const home = process.env.XDG_CACHE_HOME || `${process.env.HOME || '/tmp'}/.cache`;
  if (!process.env.NODE_COMPILE_CACHE)
    process.env.NODE_COMPILE_CACHE = `${home}/nightshift/node-compile-cache`;
  import('node:module').then((module) => {
    module.enableCompileCache(process.env.NODE_COMPILE_CACHE);
    // Stack traces name the TypeScript lines (dist/ ships its source maps).
    module.setSourceMapsSupport(true);
    return import('../dist/cli/main.js');
  });
}
