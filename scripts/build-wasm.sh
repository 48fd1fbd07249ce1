#!/usr/bin/env bash
# Builds src/analyze/wasm/strings.wasm from strings.c (Debian's clang and lld: wasm32 + SIMD, and bulk
# memory so the loops clang turns into memset/memcpy need no libc).
# The .wasm is committed; test/analyze/wasm.test.ts rebuilds it and fails when it is stale.
set -euo pipefail
src=${1:-src/analyze/wasm/strings.c}
out=${2:-src/analyze/wasm/strings.wasm}
clang --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffile-prefix-map="$(dirname "$src")"=. \
  -Wl,--no-entry -Wl,--initial-memory=8388608 -Wl,-z,stack-size=65536 -Wl,--strip-all \
  -o "$out" "$src"
