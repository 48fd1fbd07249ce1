#!/usr/bin/env bash
# Builds the WebAssembly in src/analyze/wasm from its C (Debian's clang and lld: wasm32 + SIMD, and
# bulk memory so the loops clang turns into memset/memcpy need no libc): strings.wasm (the scanner)
# and overflow.wasm (a collector's overflow table), or the one named by SRC OUT.
# The .wasm files are committed; test/analyze/wasm.test.ts rebuilds them and fails when one is stale.
set -euo pipefail
build() {
  clang --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffile-prefix-map="$(dirname "$1")"=. \
    -Wl,--no-entry -Wl,--initial-memory=8388608 -Wl,-z,stack-size=65536 -Wl,--strip-all \
    -o "$2" "$1"
}
if [ $# -gt 0 ]; then
  build "$1" "$2"
else
  build src/analyze/wasm/strings.c src/analyze/wasm/strings.wasm
  build src/analyze/wasm/overflow.c src/analyze/wasm/overflow.wasm
  build src/analyze/wasm/merge.c src/analyze/wasm/merge.wasm
fi
