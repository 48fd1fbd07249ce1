/*
 * The merge of overflow runs (src/evidence/overflow.ts): sorted run files in the record format of
 * src/evidence/spill.ts (u32 LE key length, u32 LE count, u8 encoding, UTF-8 key `kind NUL value`)
 * merged in key order, read through the imported refill(source, ptr, max), which JavaScript
 * answers with a synchronous read into this memory.
 *
 * Why here: merged in JavaScript, every record of every run (1.5 M a dump of a text-dense core)
 * became a string, compared, heap-sifted and ranked, on the main thread alone while the other
 * cores waited. Here records are compared as bytes where they lie, and JavaScript is handed only
 * the keys whose handling can change the result.
 *
 * Two modes:
 * - premerge: the runs of one dump become one (counts of a key summed and clamped to u32, the
 *   encoding of the first source holding it); step() lays records out in out_area for the caller
 *   to write.
 * - resolve: the runs of every dump, with each dump's kept values as one more source (kept = 1,
 *   its count field the kept item's index), merged at once. For each key, with per dump its kept
 *   index and the occurrences it spilled, step() emits an event when JavaScript has work to do:
 *   (a) a dump spilled occurrences of a value it kept (the kept item takes them);
 *   (b) a candidate (a key in two dumps or more, or of an `always` kind such as request, or any
 *       key when there is one dump), unless it surely cannot beat the worst of the full promoted
 *       heap, as JavaScript last set it, and no dump kept it (else it is named unlisted there);
 *   (c) a count that enters its (dump, kind) top heap: a min-heap of the `top` largest counts seen
 *       so far, which JavaScript keeps too, with ties broken by key. Keys come in ascending order,
 *       so a later key that only ties the smallest count is worse than every one kept and cannot
 *       enter: only a strictly larger count does, exactly when JavaScript's heap takes it.
 *   A key that is emitted is processed by JavaScript in full (the same code for every key as the
 *   JavaScript merge); a key that is not would have changed nothing there.
 *
 * Bounds (set_bounds): a merge may take only the keys from `lo` (inclusive) to `hi` (exclusive),
 * so that two threads share one resolve (src/evidence/overflow-split.ts): a source's records below
 * lo are read and passed over, and a record at or above hi ends the source.
 *
 * Byte order is the UTF-16 code-unit order JavaScript compares keys in for the values there are:
 * printable ASCII and U+2026 (see overflow.c). Equal keys of several sources come in source order.
 *
 * Build: npm run build:wasm. The .wasm is committed.
 */
#include <stdint.h>

#define RECORD_HEADER 9
#define NONE 0xffffffffu
#define MAX_KINDS 64
#define OUT_SIZE (1u << 20)

__attribute__((import_module("env"), import_name("refill")))
int32_t refill(uint32_t source, uint8_t *ptr, uint32_t max);

extern unsigned char __heap_base;

/* A bump allocator over memory grown on demand; nothing is freed (one instance, one merge). */
static uintptr_t brk;

static void *alloc(uint32_t bytes) {
  if (brk == 0) brk = (uintptr_t)&__heap_base;
  uintptr_t at = (brk + 15) & ~(uintptr_t)15;
  uintptr_t end = at + bytes;
  uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
  if (end > have) {
    uintptr_t pages = (end - have + 65535) / 65536;
    if (__builtin_wasm_memory_grow(0, pages) == (uintptr_t)-1) return 0;
  }
  brk = end;
  return (void *)at;
}

typedef struct {
  uint8_t *buf;
  uint32_t cap, start, end, eof;
  /* The current record. */
  uint8_t *key;
  uint32_t len, count, encoding;
  uint32_t dump, kept;
  /* A record at or above lo was read: the ones after it are too (a source is sorted). */
  uint32_t past_lo;
} Source;

static Source *sources;
static uint32_t n_sources;
/*
 * A loser tree over the sources: tree[0] the source with the smallest key (NONE once all are read),
 * tree[1..n) the loser of each match, leaves n..2n the sources. Taking the next record replays one
 * path from leaf to root: log2(n) comparisons, where a binary heap's sift-down makes up to twice that.
 */
static uint32_t *tree;
static uint32_t mode; /* 0 resolve, 1 premerge */
static uint32_t failed;
static uint8_t *out;
static uint8_t *key; /* the key being gathered */
static uint32_t key_cap, key_len;
static uint8_t *scratch; /* where JavaScript writes a kind name */

/* Resolve state. */
static uint32_t n_dumps, total, top_size;
static uint32_t *kept_index;
static uint64_t *spilled;
static uint32_t *spilled_encoding;
static uint32_t *touched;
static uint8_t *seen;
static uint32_t n_touched;
/* The worst of the full promoted heap: rank, dumps, occurrences (none while it is not full). */
static double threshold = -__builtin_inf();
static uint32_t threshold_dumps;
static double threshold_occurrences;
/* Whether every key the threshold's candidate could have comes before the keys still to merge. */
static uint32_t threshold_ordered = 1;
/* The keys this merge takes (see the comment at the top); a length of 0 is no bound. */
static uint8_t *bound_lo, *bound_hi;
static uint32_t lo_len, hi_len;

static uint32_t n_kinds;
static uint8_t kind_name[MAX_KINDS][32];
static uint32_t kind_len[MAX_KINDS];
static double kind_weight[MAX_KINDS];
static uint32_t kind_always[MAX_KINDS];
static uint32_t kind_flags[MAX_KINDS];
#define STREAM_ALWAYS 1  /* may look like a stream, whatever the value (header) */
#define STREAM_BY_VALUE 2 /* may, when the value names one (url, request) */
#define FURNITURE 4       /* always furniture (env, release, environment) */
/* Per (dump, kind): a min-heap of counts, [0] its size, then top_size counts. */
static uint64_t **tops;

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

static inline uint32_t load32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store32(uint8_t *p, uint32_t v) {
  p[0] = v, p[1] = v >> 8, p[2] = v >> 16, p[3] = v >> 24;
}

/* memcmp order of two byte strings, eight bytes a step (big-endian words compare as bytes do). */
static int compare(const uint8_t *p, uint32_t m, const uint8_t *q, uint32_t n) {
  uint32_t k = m < n ? m : n, i = 0;
  for (; i + 8 <= k; i += 8) {
    uint64_t x = load64(p + i), y = load64(q + i);
    if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
  }
  for (; i < k; i++)
    if (p[i] != q[i]) return p[i] < q[i] ? -1 : 1;
  return m < n ? -1 : m > n ? 1 : 0;
}

static inline int before(uint32_t a, uint32_t b) {
  int c = compare(sources[a].key, sources[a].len, sources[b].key, sources[b].len);
  return c < 0 || (c == 0 && a < b);
}

/* before() with NONE, a source read to its end, after every other. */
static inline int wins(uint32_t a, uint32_t b) {
  if (a == NONE) return 0;
  if (b == NONE) return 1;
  return before(a, b);
}

/* Plays the matches below node (leaves are n_sources + i), storing losers; returns the winner. */
static uint32_t play(uint32_t node, const uint8_t *live) {
  if (node >= n_sources) return live[node - n_sources] ? node - n_sources : NONE;
  uint32_t a = play(2 * node, live), b = play(2 * node + 1, live);
  if (wins(a, b)) {
    tree[node] = b;
    return a;
  }
  tree[node] = a;
  return b;
}

/* Source i moved on (or, NONE, ended): replays its path to the root. */
static void replay(uint32_t i, uint32_t current) {
  for (uint32_t node = (n_sources + i) / 2; node >= 1; node /= 2)
    if (wins(tree[node], current)) {
      uint32_t t = tree[node];
      tree[node] = current;
      current = t;
    }
  tree[0] = current;
}

/*
 * Reads the source's next record; 0 at its end (or on a failure, then `failed` is set). A record
 * longer than the buffer gets a larger one.
 */
static uint32_t advance(uint32_t i) {
  Source *s = &sources[i];
  for (;;) {
    uint32_t have = s->end - s->start;
    uint32_t need = RECORD_HEADER;
    if (have >= RECORD_HEADER) {
      uint32_t len = load32(s->buf + s->start);
      /* No key is that long: a record cut short, which ends the source as it ends a RunReader. */
      if (len > (1u << 30)) return 0;
      need = RECORD_HEADER + len;
      if (have >= need) {
        uint8_t *r = s->buf + s->start;
        s->len = need - RECORD_HEADER;
        s->count = load32(r + 4);
        s->encoding = r[8];
        s->key = r + RECORD_HEADER;
        s->start += need;
        if (hi_len > 0 && compare(s->key, s->len, bound_hi, hi_len) >= 0) return s->eof = 1, s->start = s->end, 0;
        if (lo_len > 0 && !s->past_lo) {
          if (compare(s->key, s->len, bound_lo, lo_len) < 0) continue;
          s->past_lo = 1;
        }
        return 1;
      }
    }
    if (s->eof) return 0;
    if (need > s->cap) {
      uint32_t cap = s->cap;
      while (cap < need) cap *= 2;
      uint8_t *buf = alloc(cap);
      if (!buf) return failed = 1, 0;
      __builtin_memcpy(buf, s->buf + s->start, have);
      s->buf = buf, s->cap = cap;
    } else if (s->start > 0) {
      __builtin_memmove(s->buf, s->buf + s->start, have);
    }
    s->start = 0, s->end = have;
    int32_t got = refill(i, s->buf + s->end, s->cap - s->end);
    if (got < 0) {
      /* The source needs -got bytes of room for its next record (a kept source's long key). */
      uint32_t cap = s->cap;
      while (cap < (uint32_t)-got + have) cap *= 2;
      uint8_t *buf = alloc(cap);
      if (!buf) return failed = 1, 0;
      __builtin_memcpy(buf, s->buf, have);
      s->buf = buf, s->cap = cap;
      continue;
    }
    if (got == 0) s->eof = 1;
    s->end += (uint32_t)got;
  }
}

__attribute__((export_name("scratch_area")))
uint8_t *scratch_area(void) { return scratch; }

__attribute__((export_name("out_area")))
uint8_t *out_area(void) { return out; }

__attribute__((export_name("failed")))
uint32_t has_failed(void) { return failed; }

/*
 * Makes room for `count` sources with buffers of `buffer` bytes, for `dumps` dumps of `all` in the
 * set (resolve) or one (premerge); top is the size of a (dump, kind) top heap. 0 without memory.
 */
__attribute__((export_name("setup")))
uint32_t setup(uint32_t premerge, uint32_t count, uint32_t buffer, uint32_t dumps, uint32_t all, uint32_t top) {
  mode = premerge;
  n_sources = count, n_dumps = dumps, total = all, top_size = top;
  sources = alloc(count * sizeof(Source));
  tree = alloc((count + 1) * 4);
  out = alloc(OUT_SIZE);
  key_cap = 65536;
  key = alloc(key_cap);
  scratch = alloc(4096);
  kept_index = alloc(dumps * 4);
  spilled = alloc(dumps * 8);
  spilled_encoding = alloc(dumps * 4);
  touched = alloc(dumps * 4);
  seen = alloc(dumps);
  tops = alloc(dumps * MAX_KINDS * sizeof(uint64_t *));
  if (!sources || !tree || !out || !key || !scratch || !kept_index || !spilled || !spilled_encoding ||
      !touched || !seen || !tops)
    return 0;
  for (uint32_t i = 0; i < count; i++) {
    sources[i].buf = alloc(buffer);
    if (!sources[i].buf) return 0;
    sources[i].cap = buffer;
    sources[i].start = sources[i].end = sources[i].eof = sources[i].past_lo = 0;
  }
  for (uint32_t d = 0; d < dumps; d++) kept_index[d] = NONE, spilled[d] = 0, seen[d] = 0;
  for (uint32_t i = 0; i < dumps * MAX_KINDS; i++) tops[i] = 0;
  return 1;
}

/* Source i belongs to dump `dump`; kept: it is the dump's kept values. */
__attribute__((export_name("set_source")))
void set_source(uint32_t i, uint32_t dump, uint32_t kept) {
  sources[i].dump = dump;
  sources[i].kept = kept;
}

/* A kind (its name in scratch_area), the weight correlate ranks it by, and whether it is a
 * candidate from one dump. */
__attribute__((export_name("add_kind")))
void add_kind(uint32_t len, double weight, uint32_t always, uint32_t flags) {
  if (n_kinds == MAX_KINDS || len > 32) return;
  __builtin_memcpy(kind_name[n_kinds], scratch, len);
  kind_len[n_kinds] = len;
  kind_weight[n_kinds] = weight;
  kind_always[n_kinds] = always;
  kind_flags[n_kinds] = flags;
  n_kinds++;
}

/* The promoted heap's worst, once it is full: candidates that cannot beat it are not emitted
 * (unless kept somewhere). It only gets better. `ordered`: its key comes before every key still to
 * merge, so a candidate that ties it in all but the key is the worse; where the other thread of a
 * shared resolve may have set it, it need not, and a full tie is emitted. */
__attribute__((export_name("set_threshold")))
void set_threshold(double rank, uint32_t dumps, double occurrences, uint32_t ordered) {
  threshold = rank, threshold_dumps = dumps, threshold_occurrences = occurrences;
  threshold_ordered = ordered;
}

/* Room for the bounds, lo's bytes then hi's: call after setup, write them, then set_bounds. */
__attribute__((export_name("bound_area")))
uint8_t *bound_area(uint32_t bytes) {
  bound_lo = alloc(bytes > 0 ? bytes : 1);
  return bound_lo;
}

/* Takes the keys from lo (lo_bytes long, 0 for none) to hi (hi_bytes, 0 for none). Before start. */
__attribute__((export_name("set_bounds")))
void set_bounds(uint32_t lo_bytes, uint32_t hi_bytes) {
  lo_len = lo_bytes, hi_len = hi_bytes;
  bound_hi = bound_lo + lo_bytes;
}

/* Reads every source's first record. Call after setup and set_source. */
__attribute__((export_name("start")))
uint32_t start(void) {
  uint8_t *live = alloc(n_sources + 1);
  if (!live) return 0;
  for (uint32_t i = 0; i < n_sources; i++) live[i] = (uint8_t)advance(i);
  tree[0] = n_sources == 0 ? NONE : play(1, live);
  if (n_sources == 1) tree[0] = live[0] ? 0 : NONE;
  return !failed;
}

/* The kind of the key being gathered, or NONE. Keys come sorted, so it is nearly always the last. */
static uint32_t last_kind = NONE;
static uint32_t kind_of(void) {
  uint32_t n = 0;
  while (n < key_len && key[n] != 0) n++;
  if (n == key_len) return NONE;
  if (last_kind != NONE && kind_len[last_kind] == n && compare(kind_name[last_kind], n, key, n) == 0)
    return last_kind;
  for (uint32_t k = 0; k < n_kinds; k++)
    if (kind_len[k] == n && compare(kind_name[k], n, key, n) == 0) return last_kind = k;
  return NONE;
}

/* Offers a count to the (dump, kind) top heap; 1 when it enters (see the comment at the top). */
static uint32_t offer_top(uint32_t dump, uint32_t kind, uint64_t count) {
  uint64_t **slot = &tops[dump * MAX_KINDS + kind];
  if (!*slot) {
    *slot = alloc((top_size + 1) * 8);
    if (!*slot) return failed = 1, 1;
    (*slot)[0] = 0;
  }
  uint64_t *h = *slot + 1;
  uint64_t n = (*slot)[0];
  if (n < top_size) {
    uint64_t i = n;
    while (i > 0 && h[(i - 1) / 2] > count) {
      h[i] = h[(i - 1) / 2];
      i = (i - 1) / 2;
    }
    h[i] = count;
    (*slot)[0] = n + 1;
    return 1;
  }
  if (top_size == 0 || count <= h[0]) return 0;
  uint64_t i = 0;
  for (;;) {
    uint64_t l = 2 * i + 1, m = l;
    if (l >= n) break;
    if (l + 1 < n && h[l + 1] < h[l]) m = l + 1;
    if (h[m] >= count) break;
    h[i] = h[m];
    i = m;
  }
  h[i] = count;
  return 1;
}

static inline uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/*
 * Whether the value (past the key's NUL) may be what streamReasons (correlate.ts) calls a stream:
 * it holds, in any case, a word its patterns look for in a path or host, or a dot and an extension
 * they look for. A superset: when it says no, streamReasons finds nothing.
 */
static const char *const STREAM_WORDS[] = {"radio", "stream", "icecast", "shoutcast", "live", "listen",
                                           ".mp3",  ".aac",   ".m3u",    ".pls",      ".ogg", ".opus",
                                           ".flac", ".wav",   ".ts",     ".m4a"};
/*
 * Bytes (lower-cased) that begin some word: only there is a word compared. Testing every word at
 * every byte made this the whole cost of resolving one dump of long values (every key of one dump
 * is a candidate): 16 words at each of 350 bytes, a million keys, 7 s of the 10.
 */
static uint8_t word_start[256];
static uint32_t word_start_ready;
static uint32_t may_stream(void) {
  const uint32_t n_words = sizeof STREAM_WORDS / sizeof STREAM_WORDS[0];
  if (!word_start_ready) {
    for (uint32_t w = 0; w < n_words; w++) word_start[(uint8_t)STREAM_WORDS[w][0]] = 1;
    word_start_ready = 1;
  }
  uint32_t from = 0;
  while (from < key_len && key[from] != 0) from++;
  for (uint32_t i = from + 1; i < key_len; i++) {
    uint8_t c = lower(key[i]);
    if (!word_start[c]) continue;
    for (uint32_t w = 0; w < n_words; w++) {
      const char *word = STREAM_WORDS[w];
      if ((uint8_t)word[0] != c) continue;
      uint32_t k = 1;
      while (word[k] != 0 && i + k < key_len && lower(key[i + k]) == (uint8_t)word[k]) k++;
      if (word[k] == 0) return 1;
    }
  }
  return 0;
}

/*
 * An upper bound of rank() (overflow.ts) for `dumps` of total, in the same operations in the same
 * order, so that where it is exact it is the same double: the stream factor unless the kind or the
 * value rules it out, the furniture factor where the kind makes it certain.
 */
static double rank_bound(uint32_t kind, uint32_t dumps, uint32_t stream) {
  double score = kind_weight[kind] * (0.5 + (double)dumps / (double)total);
  if (stream) score *= 1.6;
  if (kind_flags[kind] & FURNITURE) score *= 0.3;
  else if (total >= 3 && dumps == total) score *= 0.75;
  return score;
}

/*
 * Whether a candidate no dump kept surely cannot enter the full promoted heap (worseThan in
 * overflow.ts): its rank is below the worst's, or ties it and it has no more dumps and occurrences;
 * keys come in ascending order, so on a full tie the later one is the worse (unless the threshold
 * may have come from keys after these: see set_threshold).
 */
static uint32_t cannot_promote(uint32_t kind, uint32_t dumps, uint64_t occurrences) {
  if (threshold == -__builtin_inf()) return 0;
  uint32_t flags = kind_flags[kind];
  double bound = rank_bound(kind, dumps, flags & (STREAM_ALWAYS | STREAM_BY_VALUE));
  if (bound > threshold && (flags & STREAM_BY_VALUE) && !may_stream()) bound = rank_bound(kind, dumps, 0);
  if (bound < threshold) return 1;
  if (bound > threshold) return 0;
  if (dumps != threshold_dumps) return dumps < threshold_dumps;
  return threshold_ordered ? (double)occurrences <= threshold_occurrences : (double)occurrences < threshold_occurrences;
}

/* Decides on the gathered key and writes its event at out + at; returns the new end. */
static uint32_t resolve_key(uint32_t at) {
  uint32_t kept = 0, kept_spilled = 0, only_spilled = 0;
  uint64_t occurrences = 0;
  for (uint32_t t = 0; t < n_touched; t++) {
    uint32_t d = touched[t];
    if (kept_index[d] != NONE) {
      kept++;
      if (spilled[d] > 0) kept_spilled++;
    } else if (spilled[d] > 0) {
      only_spilled++;
      occurrences += spilled[d];
    }
  }
  uint32_t emit = kept_spilled > 0;
  if (only_spilled > 0) {
    uint32_t kind = kind_of();
    for (uint32_t t = 0; t < n_touched; t++) {
      uint32_t d = touched[t];
      if (kept_index[d] == NONE && spilled[d] > 0 && (kind == NONE || offer_top(d, kind, spilled[d])))
        emit = 1;
    }
    uint32_t dumps = kept + only_spilled;
    if (kind == NONE) {
      emit = 1;
    } else if (dumps >= 2 || total == 1 || kind_always[kind]) {
      if (kept > 0 || !cannot_promote(kind, dumps, occurrences)) emit = 1;
    }
  }
  if (emit) {
    store32(out + at, key_len);
    store32(out + at + 4, n_touched);
    __builtin_memcpy(out + at + 8, key, key_len);
    at += 8 + key_len;
    for (uint32_t t = 0; t < n_touched; t++) {
      uint32_t d = touched[t];
      store32(out + at, d);
      store32(out + at + 4, kept_index[d]);
      store32(out + at + 8, spilled_encoding[d]);
      store32(out + at + 12, (uint32_t)spilled[d]);
      store32(out + at + 16, (uint32_t)(spilled[d] >> 32));
      at += 20;
    }
  }
  for (uint32_t t = 0; t < n_touched; t++) {
    uint32_t d = touched[t];
    kept_index[d] = NONE, spilled[d] = 0, seen[d] = 0;
  }
  n_touched = 0;
  return at;
}

/*
 * Merges up to `max_keys` keys, or until out_area could not take another; returns the bytes laid
 * out there (events, or premerged records; none when no key merged needs one). See has_failed,
 * remaining and merged.
 */
static uint32_t keys_done;

__attribute__((export_name("step")))
uint32_t step(uint32_t max_keys) {
  uint32_t at = 0;
  keys_done = 0;
  for (; keys_done < max_keys && tree[0] != NONE && !failed; keys_done++) {
    /* Room for this key's event or record, whatever it turns out to be. */
    Source *first = &sources[tree[0]];
    if (at + 8 + first->len + n_dumps * 20 + RECORD_HEADER > OUT_SIZE) break;
    if (first->len > key_cap) {
      uint32_t cap = key_cap;
      while (cap < first->len) cap *= 2;
      uint8_t *k = alloc(cap);
      if (!k) return failed = 1, 0;
      key = k, key_cap = cap;
    }
    key_len = first->len;
    __builtin_memcpy(key, first->key, key_len);
    uint64_t sum = 0;
    uint32_t encoding = first->encoding;
    while (tree[0] != NONE) {
      uint32_t i = tree[0];
      Source *s = &sources[i];
      if (s != first && compare(s->key, s->len, key, key_len) != 0) break;
      first = 0;
      if (mode == 1) {
        sum += s->count;
      } else {
        uint32_t d = s->dump;
        if (!seen[d]) seen[d] = 1, touched[n_touched++] = d;
        if (s->kept) {
          kept_index[d] = s->count;
        } else {
          if (spilled[d] == 0) spilled_encoding[d] = s->encoding;
          spilled[d] += s->count;
        }
      }
      replay(i, advance(i) ? i : NONE);
      if (failed) return 0;
    }
    if (mode == 1) {
      uint32_t c = sum > 0xffffffffull ? 0xffffffffu : (uint32_t)sum;
      store32(out + at, key_len);
      store32(out + at + 4, c);
      out[at + 8] = (uint8_t)encoding;
      __builtin_memcpy(out + at + RECORD_HEADER, key, key_len);
      at += RECORD_HEADER + key_len;
    } else {
      /* Dumps in ascending order, as JavaScript visits them. */
      for (uint32_t a = 1; a < n_touched; a++) {
        uint32_t x = touched[a], b = a;
        for (; b > 0 && touched[b - 1] > x; b--) touched[b] = touched[b - 1];
        touched[b] = x;
      }
      at = resolve_key(at);
    }
  }
  return at;
}

/* Sources not read to their end: 0 once the merge is done. */
__attribute__((export_name("remaining")))
uint32_t remaining(void) { return tree[0] != NONE; }

/* Keys the last step merged. */
__attribute__((export_name("merged")))
uint32_t merged(void) { return keys_done; }
