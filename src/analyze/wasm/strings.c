/*
 * The hot loop of src/analyze/strings.ts in WebAssembly SIMD: find printable ASCII runs (0x20-0x7e,
 * at least MIN_ASCII bytes) and UTF-16LE ASCII runs (at least MIN_UTF16 pairs) in one chunk, 16
 * bytes a step. It mirrors StringScanner.scanWords exactly (the tests run both against one
 * reference): a run is found through an aligned 4-byte word inside it that is all printable (ASCII)
 * or printable/NUL pairs (UTF-16), which every run long enough contains.
 *
 * Build: npm run build:wasm (clang --target=wasm32 -msimd128). The .wasm is committed.
 */
#include <stdint.h>
#include <wasm_simd128.h>

#define MIN_ASCII 8
#define MIN_UTF16 6

/* Output records: kind, start, end (end exclusive). */
#define REC_ASCII 1      /* a closed ASCII run of MIN_ASCII bytes or more */
#define REC_UTF16 2      /* a closed UTF-16 run of MIN_UTF16 pairs or more (end - start is even) */
#define REC_ASCII_OPEN 3 /* an ASCII run that reaches the end of the chunk */
#define REC_UTF16_OPEN 4 /* a UTF-16 run that reaches the end (may end in half a pair) */

static inline int printable(uint8_t c) { return c >= 0x20 && c < 0x7f; }

/*
 * One load, two masks: bits 0-15 printable bytes, bits 16-31 NUL bytes, of the 16 at `at`; bytes
 * at or past len count as neither.
 */
static inline uint32_t classify(const uint8_t *in, uint32_t len, uint32_t at) {
  v128_t v = wasm_v128_load(in + at);
  v128_t p = wasm_v128_and(wasm_i8x16_gt(v, wasm_i8x16_splat(0x1f)), wasm_i8x16_lt(v, wasm_i8x16_splat(0x7f)));
  uint32_t bits = wasm_i8x16_bitmask(p) | (wasm_i8x16_bitmask(wasm_i8x16_eq(v, wasm_i8x16_splat(0))) << 16);
  if (at + 16 > len) {
    uint32_t keep = len > at ? (1u << (len - at)) - 1 : 0;
    bits &= keep | (keep << 16);
  }
  return bits;
}

static uint32_t *out;
static uint32_t count;

static inline void emit(uint32_t kind, uint32_t start, uint32_t end) {
  out[count * 3] = kind;
  out[count * 3 + 1] = start;
  out[count * 3 + 2] = end;
  count++;
}

/*
 * Scans in[0..len) from `from_ascii` / `from_utf16` (bytes before them belong to runs carried over
 * from the previous chunk). The caller guarantees 16 readable bytes past len, set to 0xff. Returns
 * the number of records written to `records`.
 */
__attribute__((export_name("scan")))
uint32_t scan(const uint8_t *in, uint32_t len, uint32_t from_ascii, uint32_t from_utf16, uint32_t *records) {
  out = records;
  count = 0;
  uint32_t from = from_ascii < from_utf16 ? from_ascii : from_utf16;
  uint32_t resume = from_ascii, resume16 = from_utf16;
  int carried = 0, carried16 = 0;
  const v128_t lo = wasm_i8x16_splat(0x1f), hi = wasm_i8x16_splat(0x7f), zero = wasm_i8x16_splat(0);
  const v128_t even = wasm_i32x4_splat(0x00ff00ff), odd = wasm_i32x4_splat((int32_t)0xff00ff00);
  const v128_t ones = wasm_i32x4_splat(-1);
  uint32_t first = (from + 3) & ~3u; /* first aligned word at or after from */
  uint32_t block = first & ~15u;
  /*
   * A sliding window of printable and zero bits over the blocks before, at and after the current
   * one. Cheap scalar arithmetic on it tells whether a long enough run (ASCII or UTF-16) overlaps
   * the block at all; on binary data it almost never does, and the block costs one load.
   */
  uint64_t pw = 0, zw = 0;
  int fresh = 1;
  for (; block < len && !(carried || carried16); block += 16) {
    if (fresh) {
      uint32_t before = block >= 16 ? classify(in, len, block - 16) : 0, here = classify(in, len, block);
      pw = (before & 0xffff) | (uint64_t)(here & 0xffff) << 16;
      zw = (before >> 16) | (uint64_t)(here >> 16) << 16;
      fresh = 0;
    } else {
      pw >>= 16;
      zw >>= 16;
    }
    uint32_t next = classify(in, len, block + 16);
    pw |= (uint64_t)(next & 0xffff) << 32;
    zw |= (uint64_t)(next >> 16) << 32;
    uint64_t r = pw & (pw >> 1);
    r &= r >> 2;
    r &= r >> 4; /* bit k: bytes k..k+7 printable */
    uint64_t q = pw & (zw >> 1); /* bit k: a printable byte followed by NUL */
    uint64_t s2 = q & (q >> 2);
    uint64_t s6 = s2 & (s2 >> 4) & (s2 >> 8); /* bit k: six such pairs from k */
    if (((r >> 9) & 0x7fffffu) == 0 && ((s6 >> 5) & 0x7ffffffu) == 0) continue;
    uint32_t at_block = block;
    v128_t v = wasm_v128_load(in + block);
    v128_t p = wasm_v128_and(wasm_i8x16_gt(v, lo), wasm_i8x16_lt(v, hi)); /* signed: >= 0x80 fails */
    v128_t z = wasm_i8x16_eq(v, zero);
    v128_t a = wasm_i32x4_eq(p, ones);
    v128_t u1 = wasm_i32x4_eq(wasm_v128_or(wasm_v128_and(p, even), wasm_v128_and(z, odd)), ones);
    v128_t u2 = wasm_i32x4_eq(wasm_v128_or(wasm_v128_and(z, even), wasm_v128_and(p, odd)), ones);
    uint32_t am = wasm_i32x4_bitmask(a), m1 = wasm_i32x4_bitmask(u1), m2 = wasm_i32x4_bitmask(u2);
    for (uint32_t lane = 0; lane < 4; lane++) {
      uint32_t at = block + lane * 4;
      if (at < first || at + 4 > len) continue;
      if (am & (1u << lane)) {
        if (at < resume) continue;
        uint32_t s = at, e = at + 4;
        while (s > resume && printable(in[s - 1])) s--;
        while (e < len && printable(in[e])) e++;
        if (e == len) {
          emit(REC_ASCII_OPEN, s, e);
          carried = 1;
          break;
        }
        if (e - s >= MIN_ASCII) emit(REC_ASCII, s, e);
        resume = e + 1;
        /* Go on with the word holding e + 1, as the JavaScript loop does. */
        if (((e + 1) & ~3u) > first) first = (e + 1) & ~3u;
        if (e + 1 >= block + 16) {
          block = ((e + 1) & ~15u) - 16;
          break;
        }
        continue;
      }
      uint32_t pair_start;
      if (m1 & (1u << lane)) pair_start = at;
      else if (m2 & (1u << lane)) pair_start = at + 1;
      else continue;
      if (pair_start < resume16) continue;
      uint32_t s = pair_start, e = pair_start;
      while (s >= resume16 + 2 && printable(in[s - 2]) && in[s - 1] == 0) s -= 2;
      while (e + 1 < len && printable(in[e]) && in[e + 1] == 0) e += 2;
      if (e + 1 >= len && (e == len || printable(in[e]))) {
        emit(REC_UTF16_OPEN, s, len);
        carried16 = 1;
        break;
      }
      if ((e - s) / 2 >= MIN_UTF16) emit(REC_UTF16, s, e);
      resume16 = e;
      if ((e & ~3u) > first) first = e & ~3u;
      if (e >= block + 16) {
        block = (e & ~15u) - 16;
        break;
      }
    }
    if (block != at_block) fresh = 1; /* jumped ahead: rebuild the window */
  }
  /* Runs too short to hold an aligned word may still continue in the next chunk. */
  if (!carried) {
    uint32_t s = len;
    while (s > resume && s + 16 > len && printable(in[s - 1])) s--;
    if (s < len) emit(REC_ASCII_OPEN, s, len);
  }
  if (!carried16) {
    uint32_t s = len;
    if (s >= resume16 + 1 && printable(in[s - 1])) s -= 1;
    while (s >= resume16 + 2 && s + 32 > len && printable(in[s - 2]) && in[s - 1] == 0) s -= 2;
    if (s < len && (len - s >= 2 || printable(in[s]))) emit(REC_UTF16_OPEN, s, len);
  }
  return count;
}
