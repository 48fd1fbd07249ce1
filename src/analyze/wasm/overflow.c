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

/*
 * The keys' byte order, by multikey quicksort (Bentley and Sedgewick) on eight-byte digits: the
 * keys of one table share long prefixes (`url\0https://api3.example.com/v1/items/`), and a merge
 * sort that compared each pair from its first byte spent a quarter of a text-dense core's scan
 * doing so. Here each key's bytes are read about once per level they share with others, as
 * integers. Keys are distinct, so two that agree up to where one ends are told apart by length.
 */

/* The eight bytes of entry e from `depth`, big-endian, zero past its end (so they compare as bytes). */
static inline uint64_t digit(uint32_t e, uint32_t depth) {
  uint32_t n = entry_len[e];
  if (depth >= n) return 0;
  const uint8_t *p = arena + entry_at[e] + depth;
  if (n - depth >= 8) return __builtin_bswap64(load64(p));
  uint64_t d = 0;
  for (uint32_t i = 0; i < 8; i++) d = d << 8 | (depth + i < n ? p[i] : 0);
  return d;
}

static uint64_t key_digit[MAX_ENTRIES];

static inline void swap(uint32_t *a, uint64_t *d, uint32_t i, uint32_t j) {
  uint32_t t = a[i];
  a[i] = a[j], a[j] = t;
  uint64_t u = d[i];
  d[i] = d[j], d[j] = u;
}

/* Insertion sort of order[lo..hi) by the keys from `depth` on (all agree before it). */
static void insertion(uint32_t lo, uint32_t hi, uint32_t depth) {
  for (uint32_t i = lo + 1; i < hi; i++) {
    uint32_t e = order[i], j = i;
    const uint8_t *p = arena + entry_at[e];
    uint32_t m = entry_len[e];
    for (; j > lo; j--) {
      uint32_t f = order[j - 1];
      const uint8_t *q = arena + entry_at[f];
      uint32_t n = entry_len[f], k = m < n ? m : n, x = depth;
      while (x < k && p[x] == q[x]) x++;
      int less = x < k ? p[x] < q[x] : m < n;
      if (!less) break;
      order[j] = f;
    }
    order[j] = e;
  }
}

/* Sorts order[lo..hi), whose keys agree on their first `depth` bytes. */
static void multikey(uint32_t lo, uint32_t hi, uint32_t depth) {
  while (hi - lo > 16) {
    for (uint32_t i = lo; i < hi; i++) key_digit[i] = digit(order[i], depth);
    /* Median of three as the pivot. */
    uint32_t mid = lo + (hi - lo) / 2;
    uint64_t a = key_digit[lo], b = key_digit[mid], c = key_digit[hi - 1];
    uint64_t pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
    /* Three-way partition (Dijkstra): [lo, lt) below, [lt, i) equal, [gt, hi) above. */
    uint32_t lt = lo, i = lo, gt = hi;
    while (i < gt) {
      if (key_digit[i] < pivot) swap(order, key_digit, lt++, i++);
      else if (key_digit[i] > pivot) swap(order, key_digit, i, --gt);
      else i++;
    }
    /* In the equal part, keys that end within these eight bytes come first, shorter first. */
    uint32_t done = lt;
    for (uint32_t k = lt; k < gt; k++)
      if (entry_len[order[k]] <= depth + 8) swap(order, key_digit, done++, k);
    insertion(lt, done, depth);
    /* The two smaller parts by recursion, the largest by the loop: at most log2(n) frames deep. */
    uint32_t below = lt - lo, above = hi - gt, equal = gt - done;
    if (equal >= below && equal >= above) {
      multikey(lo, lt, depth);
      multikey(gt, hi, depth);
      lo = done, hi = gt, depth += 8;
    } else if (below >= above) {
      multikey(gt, hi, depth);
      multikey(done, gt, depth + 8);
      hi = lt;
    } else {
      multikey(lo, lt, depth);
      multikey(done, gt, depth + 8);
      lo = gt;
    }
  }
  insertion(lo, hi, depth);
}

static void sort(uint32_t n) { multikey(0, n, 0); }

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
