#!/usr/bin/env bash
# Builds the WebAssembly in src/analyze/wasm from its C (Debian's clang and lld: wasm32 + SIMD, and
# bulk memory so the loops clang turns into memset/memcpy need no libc): strings.wasm (the scanner)
# and overflow.wasm (a collector's overflow table), or the one named by SRC OUT.
# The .wasm files are committed; test/analyze/wasm.test.ts rebuilds them and fails when one is stale.
set -euo pipefail
# Initial memory: 8 MiB, where the scanner and the overflow table lay out their areas; merge.wasm
# starts at 2 MiB and grows as its sources need (an instance per merge, several at once: each
# thread's compaction, and both parts of a shared resolve, see src/evidence/overflow-split.ts).
build() {
  local initial=8388608
  case "$2" in *merge.wasm) initial=2097152 ;; esac
  clang --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffile-prefix-map="$(dirname "$1")"=. \
    -Wl,--no-entry -Wl,--initial-memory="$initial" -Wl,-z,stack-size=65536 -Wl,--strip-all \
    -o "$2" "$1"
}
if [ $# -gt 0 ]; then
  build "$1" "$2"
else
  build src/analyze/wasm/strings.c src/analyze/wasm/strings.wasm
  build src/analyze/wasm/overflow.c src/analyze/wasm/overflow.wasm
  build src/analyze/wasm/merge.c src/analyze/wasm/merge.wasm
fi
