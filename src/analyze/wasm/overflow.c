/*
 * The overflow of one EvidenceCollector (src/analyze/evidence.ts) in WebAssembly memory: distinct
 * values past its in-memory caps, counted by key until the table is full, then sorted and laid out
 * as one spill run (the record format of src/evidence/spill.ts: u32 LE key length, u32 LE count,
 * u8 encoding, key bytes), which the caller writes to disk as it is.
 *
 * Why here and not in a JavaScript Map: on a text-dense core nearly every value is distinct and
 * overflows, and each key held as a JavaScript string until its run was written survived young
 * collections and was copied into the old generation to die there: garbage collection took a third
 * of the analysis. Here a key costs its bytes in a fixed arena and nothing else.
 *
 * Keys are UTF-8; values are printable ASCII and the odd U+2026 (a clipped value), so byte order
 * is the UTF-16 code-unit order the merge (src/evidence/overflow.ts) compares keys in.
 *
 * Build: npm run build:wasm. The .wasm is committed.
 */
#include <stdint.h>

#define MAX_KEY 4096
#define ARENA (1u << 20)
#define MAX_ENTRIES (1u << 15)
#define SLOTS (1u << 16) /* a power of two, at least twice MAX_ENTRIES */
#define RECORD_HEADER 9

static uint8_t key[MAX_KEY];
static uint8_t arena[ARENA];
static uint32_t used;
static uint32_t entries;
static uint32_t entry_at[MAX_ENTRIES];
static uint32_t entry_len[MAX_ENTRIES];
static uint32_t entry_count[MAX_ENTRIES];
static uint8_t entry_encoding[MAX_ENTRIES];
static uint32_t slot[SLOTS]; /* entry + 1; 0 is empty */
static uint32_t order[MAX_ENTRIES];
static uint32_t scratch[MAX_ENTRIES];
static uint8_t out[ARENA + MAX_ENTRIES * RECORD_HEADER];

/* Where the caller writes the key for add (at most MAX_KEY bytes). */
__attribute__((export_name("key_area")))
uint8_t *key_area(void) { return key; }

__attribute__((export_name("out_area")))
uint8_t *out_area(void) { return out; }

__attribute__((export_name("max_key")))
uint32_t max_key(void) { return MAX_KEY; }

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

static uint32_t hash(const uint8_t *p, uint32_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) h = (h ^ load64(p + i)) * 0xff51afd7ed558ccdull, h ^= h >> 32;
  for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  h ^= h >> 29;
  h *= 0xc4ceb9fe1a85ec53ull;
  return (uint32_t)(h ^ (h >> 32));
}

static int same(const uint8_t *a, const uint8_t *b, uint32_t n) {
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8)
    if (load64(a + i) != load64(b + i)) return 0;
  for (; i < n; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/*
 * Counts the key in key_area[0..len): returns 1, or 0 when the table has no room for a new key
 * (the caller then writes the run out, calls reset, and adds it again).
 */
__attribute__((export_name("add")))
uint32_t add(uint32_t len, uint32_t count, uint32_t encoding) {
  if (len > MAX_KEY) return 0;
  uint32_t s = hash(key, len) & (SLOTS - 1);
  for (; slot[s] != 0; s = (s + 1) & (SLOTS - 1)) {
    uint32_t e = slot[s] - 1;
    if (entry_len[e] == len && same(arena + entry_at[e], key, len)) {
      uint32_t sum = entry_count[e] + count;
      entry_count[e] = sum < count ? 0xffffffffu : sum;
      return 1;
    }
  }
  if (entries == MAX_ENTRIES || used + len > ARENA) return 0;
  uint32_t e = entries++;
  __builtin_memcpy(arena + used, key, len);
  entry_at[e] = used;
  entry_len[e] = len;
  entry_count[e] = count;
  entry_encoding[e] = (uint8_t)encoding;
  used += len;
  slot[s] = e + 1;
  return 1;
}

__attribute__((export_name("size")))
uint32_t size(void) { return entries; }

/* Byte order of two keys, eight bytes a step (big-endian words compare as the bytes do). */
static int before(uint32_t a, uint32_t b) {
  const uint8_t *p = arena + entry_at[a], *q = arena + entry_at[b];
  uint32_t m = entry_len[a], n = entry_len[b], k = m < n ? m : n, i = 0;
  for (; i + 8 <= k; i += 8) {
    uint64_t x = load64(p + i), y = load64(q + i);
    if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y);
  }
  for (; i < k; i++)
    if (p[i] != q[i]) return p[i] < q[i];
  return m < n;
}

/* Bottom-up merge sort of order[0..n) (stable, n log n; no recursion, no allocation). */
static void sort(uint32_t n) {
  uint32_t *from = order, *to = scratch;
  for (uint32_t width = 1; width < n; width *= 2) {
    for (uint32_t lo = 0; lo < n; lo += 2 * width) {
      uint32_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      uint32_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) to[k++] = before(from[j], from[i]) ? from[j++] : from[i++];
      while (i < mid) to[k++] = from[i++];
      while (j < hi) to[k++] = from[j++];
    }
    uint32_t *t = from;
    from = to;
    to = t;
  }
  if (from != order)
    for (uint32_t i = 0; i < n; i++) order[i] = from[i];
}

/* Lays the counted keys out in out_area as one run, sorted by key; returns its length in bytes. */
__attribute__((export_name("serialize")))
uint32_t serialize(void) {
  for (uint32_t i = 0; i < entries; i++) order[i] = i;
  sort(entries);
  uint32_t at = 0;
  for (uint32_t i = 0; i < entries; i++) {
    uint32_t e = order[i], n = entry_len[e], c = entry_count[e];
    out[at] = n, out[at + 1] = n >> 8, out[at + 2] = n >> 16, out[at + 3] = n >> 24;
    out[at + 4] = c, out[at + 5] = c >> 8, out[at + 6] = c >> 16, out[at + 7] = c >> 24;
    out[at + 8] = entry_encoding[e];
    __builtin_memcpy(out + at + RECORD_HEADER, arena + entry_at[e], n);
    at += RECORD_HEADER + n;
  }
  return at;
}

/* Empties the table for the next run. */
__attribute__((export_name("reset")))
void reset(void) {
  for (uint32_t s = 0; s < SLOTS; s++) slot[s] = 0;
  entries = 0;
  used = 0;
}
