/*
 * The hot loop of src/analyze/strings.ts in WebAssembly SIMD: find the maximal printable ASCII
 * runs (0x20-0x7e) of at least MIN_ASCII bytes and UTF-16LE ASCII runs of at least MIN_UTF16
 * (printable, NUL) pairs in one chunk, 64 bytes a step. Four vector compares and bitmasks give a
 * 64-bit mask of printable bytes and one of NUL bytes; a few shifts and ANDs on those masks (with
 * the previous block's carried in) say whether a long enough run ends in the block. On binary data
 * it almost never does, and the block costs a few dozen instructions. The tests hold this and the
 * JavaScript loop to one reference definition.
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
#define REC_ASCII_OPEN 3 /* an ASCII run that reaches the end of the chunk (any length) */
#define REC_UTF16_OPEN 4 /* a UTF-16 run that reaches the end (may end in half a pair) */
#define REC_VALUE_STRING 5 /* a string whose only evidence is its URLs or requests: REC_VALUE records follow */
#define REC_VALUE 6        /* one value of the string before it, as extract.ts finds it; kind in bits 8+ */
#define VALUE_URL 1
#define VALUE_REQUEST 2
#define VALUE_SQL 3

/* Set on a record whose string can yield no evidence (see triggered below); bits 8-31 hold its triggers. */
#define REC_PLAIN 0x10
/*
 * Set on an ASCII record that holds none of redact.ts's MAYBE_SECRET markers (may_hold_secret says
 * so, which says yes more often, never less): JavaScript then runs no secret test on its values,
 * which are pieces of it (extract.ts joins pieces only with ':', '=', ' in ', which no marker
 * holds). On a heap of long strings that take the JavaScript path, that test took a quarter of
 * the scan.
 */
#define REC_NO_SECRET 0x20

static inline int printable(uint8_t c) { return c >= 0x20 && c < 0x7f; }

/*
 * EVIDENCE_TRIGGERS in src/analyze/extract.ts, handed over by set_triggers: a string that holds
 * none of them, and does not start like an environment variable (NAME=, NAME upper-case), yields
 * no evidence.
 */
#define MAX_TRIGGERS 32
#define MAX_TRIGGER_LEN 32
static uint8_t trigger_area_bytes[MAX_TRIGGERS * (MAX_TRIGGER_LEN + 1)];
static uint8_t trigger[MAX_TRIGGERS][MAX_TRIGGER_LEN];
static uint32_t trigger_len[MAX_TRIGGERS];
/*
 * For each two bytes (first | second << 8), the triggers that start with them: on text, a byte a
 * trigger starts with ('e', 't', 'r', 'o', ' ') is a third of all bytes, and each sent triggered()
 * into its check loop; two bytes rule out nearly all of them with the same one table load. A
 * one-byte trigger is under every second byte, 0 included, which stands for past the end. 256 KiB,
 * below the input area (strings-wasm.ts).
 */
static uint32_t starts_trigger[65536];
static int triggers_set;
/*
 * The SIMD prefilter's tables: trigger t is in bucket t % 8, and bit b of nibble_lo1[x] says some
 * trigger of bucket b has a first byte whose low nibble is x (hi: high nibble; 2: second byte).
 * A one-byte trigger (short_trigger) has no second byte, and triggered() then does without them.
 */
static uint8_t nibble_lo1[16], nibble_hi1[16], nibble_lo2[16], nibble_hi2[16];
static int short_trigger;
static uint32_t trigger_count;

/* Where the caller writes the triggers for set_triggers: each one a length byte, then its bytes. */
__attribute__((export_name("trigger_area")))
uint8_t *trigger_area(void) { return trigger_area_bytes; }

static void init_secret_pairs(void);
static void init_url_bytes(void);

/* Takes `count` triggers from the trigger area; returns 0 (and marks nothing plain) when they do not fit. */
__attribute__((export_name("set_triggers")))
uint32_t set_triggers(uint32_t count) {
  init_secret_pairs();
  init_url_bytes();
  triggers_set = 0;
  for (int c = 0; c < 65536; c++) starts_trigger[c] = 0;
  for (int x = 0; x < 16; x++) nibble_lo1[x] = nibble_hi1[x] = nibble_lo2[x] = nibble_hi2[x] = 0;
  short_trigger = 0;
  if (count > MAX_TRIGGERS) return 0;
  const uint8_t *p = trigger_area_bytes;
  for (uint32_t t = 0; t < count; t++) {
    uint32_t n = *p++;
    if (n == 0 || n > MAX_TRIGGER_LEN) return 0;
    for (uint32_t k = 0; k < n; k++) trigger[t][k] = p[k];
    trigger_len[t] = n;
    if (n == 1)
      for (int c = 0; c < 256; c++) starts_trigger[p[0] | c << 8] |= 1u << t;
    else
      starts_trigger[p[0] | p[1] << 8] |= 1u << t;
    uint8_t bucket = 1u << (t % 8);
    if (n == 1) short_trigger = 1;
    else {
      nibble_lo1[p[0] & 15] |= bucket, nibble_hi1[p[0] >> 4] |= bucket;
      nibble_lo2[p[1] & 15] |= bucket, nibble_hi2[p[1] >> 4] |= bucket;
    }
    p += n;
  }
  trigger_count = count;
  triggers_set = 1;
  return count;
}

/*
 * Which triggers in[s..e), every `step`-th byte (2 for UTF-16LE), holds: bit t for trigger t, bit
 * ENV_BIT when it starts like an environment variable; ALL_TRIGGERS when the triggers are not set
 * (or too many to fit a mask). JavaScript then skips the extractors whose trigger is absent
 * without looking for it again (extract.ts).
 */
#define ENV_BIT 23
#define MASK_TRIGGERS 23
#define ALL_TRIGGERS 0xffffffu

/* The triggers that start at in[i] (with the mask so far): a lookup by two bytes, then each checked. */
static inline uint32_t triggers_at(const uint8_t *in, uint32_t i, uint32_t e, uint32_t step, uint32_t mask) {
  /* The next character, or 0 past the end: a trigger of two bytes or more cannot start there. */
  uint32_t next = i + step < e ? in[i + step] : 0;
  for (uint32_t candidates = starts_trigger[in[i] | next << 8] & ~mask; candidates; candidates &= candidates - 1) {
    uint32_t t = __builtin_ctz(candidates), n = trigger_len[t];
    if ((e - i + step - 1) / step < n) continue;
    uint32_t k = 1;
    while (k < n && in[i + k * step] == trigger[t][k]) k++;
    if (k == n) mask |= 1u << t;
  }
  return mask;
}

__attribute__((noinline)) static uint32_t triggered(const uint8_t *in, uint32_t s, uint32_t e, uint32_t step) {
  if (!triggers_set || trigger_count > MASK_TRIGGERS) return ALL_TRIGGERS;
  uint32_t mask = 0;
  if (in[s] >= 'A' && in[s] <= 'Z') {
    uint32_t i = s + step;
    while (i < e && ((in[i] >= 'A' && in[i] <= 'Z') || (in[i] >= '0' && in[i] <= '9') || in[i] == '_')) i += step;
    if (i < e && in[i] == '=') mask |= 1u << ENV_BIT;
  }
  if (step == 1 && !short_trigger) {
    /*
     * ASCII, 16 positions a step: nibble tables (see set_triggers) rule out a position unless some
     * trigger's bucket has its first byte's nibbles and the next byte's; only the few left are
     * looked up. Reads up to 16 bytes past e (the caller's buffer allows it); a position at or
     * past e is masked off, and the one byte past e seen for the last position only adds a
     * candidate that triggers_at then checks with the end in view.
     */
    const v128_t low = wasm_i8x16_splat(0x0f);
    const v128_t lo1 = wasm_v128_load(nibble_lo1), hi1 = wasm_v128_load(nibble_hi1);
    const v128_t lo2 = wasm_v128_load(nibble_lo2), hi2 = wasm_v128_load(nibble_hi2);
    for (uint32_t i = s; i < e; i += 16) {
      v128_t a = wasm_v128_load(in + i), b = wasm_v128_load(in + i + 1);
      v128_t hit = wasm_v128_and(
          wasm_v128_and(wasm_i8x16_swizzle(lo1, wasm_v128_and(a, low)), wasm_i8x16_swizzle(hi1, wasm_u8x16_shr(a, 4))),
          wasm_v128_and(wasm_i8x16_swizzle(lo2, wasm_v128_and(b, low)), wasm_i8x16_swizzle(hi2, wasm_u8x16_shr(b, 4))));
      uint32_t at = wasm_i8x16_bitmask(wasm_i8x16_ne(hit, wasm_i8x16_splat(0)));
      if (e - i < 16) at &= (1u << (e - i)) - 1;
      for (; at; at &= at - 1) mask = triggers_at(in, i + __builtin_ctz(at), e, 1, mask);
    }
    return mask;
  }
  for (uint32_t i = s; i < e; i += step) mask = triggers_at(in, i, e, step, mask);
  return mask;
}

/* The record's kind, with REC_PLAIN when no trigger is there, and the trigger mask above bit 8. */
static inline uint32_t flags(uint32_t kind, const uint8_t *in, uint32_t s, uint32_t e, uint32_t step) {
  uint32_t mask = triggered(in, s, e, step);
  return mask == 0 ? kind | REC_PLAIN : kind | mask << 8;
}


/*
 * URLs and request lines without JavaScript. On a web worker's heap most strings that hold evidence
 * are URLs (in JSON, HTML) or log lines with a request and nothing else: making each a JavaScript
 * string, running extract.ts's patterns and the secret test on it, then writing the value into the
 * overflow table took most of the analysis. When the caller says its collector takes such values as
 * bytes (scan's url_only, request_only, sql_only), a string whose only trigger is '://' (or
 * ' HTTP/', or SQL keywords) has its URLs (requests, statements) found here, exactly as extract.ts
 * finds them, and handed over as offsets;
 * anything extract.ts would treat otherwise (another scheme, a value clip() would cut, one that may
 * hold a secret) sends the string down the JavaScript path instead, whole.
 */
#define MAX_VALUE 512 /* extract.ts's MAX_VALUE: a longer URL is clipped there */

/* URL_PATTERN's character class: [\][A-Za-z0-9._~:/?#@!$&()*+,;=%-], as a table (init_url_bytes). */
static uint8_t url_bytes[256];

static void init_url_bytes(void) {
  for (int c = 0; c < 256; c++)
    url_bytes[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  for (const char *p = "[]._~:/?#@!$&()*+,;=%-"; *p; p++) url_bytes[(uint8_t)*p] = 1;
}

static inline int url_byte(uint8_t c) { return url_bytes[c]; }

static inline uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c | 0x20 : c; }

/* Whether in[i..e) starts with `word` (lower case), any case. */
static inline int starts_ci(const uint8_t *in, uint32_t i, uint32_t e, const char *word) {
  for (uint32_t k = 0; word[k]; k++)
    if (i + k >= e || lower(in[i + k]) != (uint8_t)word[k]) return 0;
  return 1;
}

/*
 * Whether one of redact.ts's MAYBE_SECRET alternatives (it is case-insensitive) starts at in[i], by
 * the letter it starts with; may_hold_secret below asks it for in[s..e), and may say yes more often
 * than MAYBE_SECRET, never less (a test holds the two together). A value here holds no two spaces
 * in a row, so "PRIVATE KEY" is covered by "private".
 */
static int secret_at(const uint8_t *in, uint32_t i, uint32_t e) {
  switch (lower(in[i])) {
    case 'x': if (starts_ci(in, i, e, "xox") || starts_ci(in, i, e, "xapp")) return 1; break;
    case 'h': if (starts_ci(in, i, e, "hooks.slack")) return 1; break;
    case 'a':
      if (starts_ci(in, i, e, "akia") || starts_ci(in, i, e, "asia") || starts_ci(in, i, e, "agpa") ||
          starts_ci(in, i, e, "aida") || starts_ci(in, i, e, "aroa") || starts_ci(in, i, e, "aiza") ||
          starts_ci(in, i, e, "auth"))
        return 1;
      break;
    case 'g':
      if (starts_ci(in, i, e, "github_pat")) return 1;
      if (i + 3 < e && lower(in[i + 1]) == 'h' && in[i + 3] == '_') {
        uint8_t c = lower(in[i + 2]);
        if (c == 'p' || c == 'o' || c == 'u' || c == 's' || c == 'r') return 1;
      }
      break;
    case 's': if (starts_ci(in, i, e, "sk-") || starts_ci(in, i, e, "secret")) return 1; break;
    case '_': if (starts_ci(in, i, e, "_live_")) return 1; break;
    case 'e': if (starts_ci(in, i, e, "eyj")) return 1; break;
    case 'b': if (starts_ci(in, i, e, "bearer") || starts_ci(in, i, e, "basic")) return 1; break;
    case 't': if (starts_ci(in, i, e, "token")) return 1; break;
    case 'd': if (starts_ci(in, i, e, "digest")) return 1; break;
    case 'p':
      if (starts_ci(in, i, e, "passw") || starts_ci(in, i, e, "private")) return 1;
      break;
    case 'k': if (starts_ci(in, i, e, "key")) return 1; break;
    case 'c': if (starts_ci(in, i, e, "credential")) return 1; break;
  }
  return 0;
}

/*
 * For each two bytes (lower case), whether some marker starts with them: on a URL nearly every byte
 * is a letter one of them starts with, and looking each up cost more than the rest of the URL's work.
 * And the same pairs as nibble tables, for the SIMD loop that rules out 16 positions at a time
 * (the scheme of triggered's): marker m is in bucket m % 8, and bit b of secret_lo1[x] says some
 * marker of bucket b starts with a byte, in either case, whose low nibble is x (hi: high nibble;
 * 2: the marker's second byte).
 */
static uint8_t secret_pair[65536];
static uint8_t secret_lo1[16], secret_hi1[16], secret_lo2[16], secret_hi2[16];

static inline uint8_t upper(uint8_t c) { return c >= 'a' && c <= 'z' ? c & ~0x20 : c; }

static void init_secret_pairs(void) {
  static const char *const markers[] = {"xox", "xapp", "hooks.slack", "akia", "asia", "agpa", "aida", "aroa",
                                        "aiza", "auth", "github_pat", "gh", "sk-", "secret", "_live_", "eyj",
                                        "bearer", "basic", "token", "digest", "passw", "private", "key",
                                        "credential"};
  for (uint32_t m = 0; m < sizeof markers / sizeof markers[0]; m++) {
    uint8_t a = (uint8_t)markers[m][0], b = (uint8_t)markers[m][1], bucket = 1u << (m % 8);
    secret_pair[a | b << 8] = 1;
    const uint8_t firsts[2] = {a, upper(a)}, seconds[2] = {b, upper(b)};
    for (int k = 0; k < 2; k++) {
      secret_lo1[firsts[k] & 15] |= bucket, secret_hi1[firsts[k] >> 4] |= bucket;
      secret_lo2[seconds[k] & 15] |= bucket, secret_hi2[seconds[k] >> 4] |= bucket;
    }
  }
}

/*
 * 16 positions a step: an '@' says yes at once; the nibble tables leave the few positions where a
 * marker may start, each then looked up and checked. Reads up to 17 bytes past e (the caller's
 * buffer allows it, as triggered's loop); positions at or past e are masked off.
 */
static int may_hold_secret(const uint8_t *in, uint32_t s, uint32_t e) {
  const v128_t low = wasm_i8x16_splat(0x0f), at_sign = wasm_i8x16_splat('@'), zero = wasm_i8x16_splat(0);
  const v128_t lo1 = wasm_v128_load(secret_lo1), hi1 = wasm_v128_load(secret_hi1);
  const v128_t lo2 = wasm_v128_load(secret_lo2), hi2 = wasm_v128_load(secret_hi2);
  for (uint32_t i = s; i < e; i += 16) {
    v128_t a = wasm_v128_load(in + i), b = wasm_v128_load(in + i + 1);
    uint32_t valid = e - i < 16 ? (1u << (e - i)) - 1 : 0xffffu;
    if (wasm_i8x16_bitmask(wasm_i8x16_eq(a, at_sign)) & valid) return 1;
    v128_t hit = wasm_v128_and(
        wasm_v128_and(wasm_i8x16_swizzle(lo1, wasm_v128_and(a, low)), wasm_i8x16_swizzle(hi1, wasm_u8x16_shr(a, 4))),
        wasm_v128_and(wasm_i8x16_swizzle(lo2, wasm_v128_and(b, low)), wasm_i8x16_swizzle(hi2, wasm_u8x16_shr(b, 4))));
    for (uint32_t at = wasm_i8x16_bitmask(wasm_i8x16_ne(hit, zero)) & valid; at; at &= at - 1) {
      uint32_t p = i + __builtin_ctz(at);
      if (p + 1 < e && secret_pair[lower(in[p]) | lower(in[p + 1]) << 8] && secret_at(in, p, e)) return 1;
    }
  }
  return 0;
}

static inline int at_scheme_sep(const uint8_t *in, uint32_t i, uint32_t e) {
  return i + 3 <= e && in[i] == ':' && in[i + 1] == '/' && in[i + 2] == '/';
}

static inline int http_at(const uint8_t *in, uint32_t i) {
  return in[i] == 'h' && in[i + 1] == 't' && in[i + 2] == 't' && in[i + 3] == 'p';
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
 * The next "://" in in[from..e), or e: 16 places a step (a ':' with '/' after it twice). A URL of a
 * heap of long strings is mostly its path, and looking at each byte for one took a fifth of the
 * scan there. Reads up to 18 bytes past e (the caller's buffer allows it); places whose three
 * bytes would pass e are masked off.
 */
static uint32_t next_scheme_sep(const uint8_t *in, uint32_t from, uint32_t e) {
  const v128_t colon = wasm_i8x16_splat(':'), slash = wasm_i8x16_splat('/');
  for (uint32_t i = from; i + 3 <= e; i += 16) {
    v128_t a = wasm_v128_load(in + i), b = wasm_v128_load(in + i + 1), c = wasm_v128_load(in + i + 2);
    uint32_t m = wasm_i8x16_bitmask(
        wasm_v128_and(wasm_v128_and(wasm_i8x16_eq(a, colon), wasm_i8x16_eq(b, slash)), wasm_i8x16_eq(c, slash)));
    uint32_t left = e - 2 - i; /* places p with p + 3 <= e */
    if (left < 16) m &= (1u << left) - 1;
    if (m) return i + __builtin_ctz(m);
  }
  return e;
}

/*
 * The URLs of in[s..e) as records after a REC_VALUE_STRING, or nothing (0) when the string must take
 * the JavaScript path: extract.ts's hasOtherScheme (a '://' after something other than http or
 * https), a URL longer than MAX_VALUE, or one that may hold a secret.
 */
static int url_fast(const uint8_t *in, uint32_t s, uint32_t e) {
  /* hasOtherScheme: each '://', the next looked for three bytes on, must follow http or https. */
  for (uint32_t at = next_scheme_sep(in, s, e); at < e; at = next_scheme_sep(in, at + 3, e)) {
    int http = at >= s + 4 && http_at(in, at - 4);
    int https = at >= s + 5 && in[at - 1] == 's' && http_at(in, at - 5);
    if (!http && !https) return 0;
  }
  uint32_t saved = count;
  emit(REC_VALUE_STRING, s, e);
  /*
   * URL_PATTERN, /https?:\/\/[class]+/g, leftmost first, each match from where the last one ended
   * (p): a match holds a '://' right after its http or https, so the '://'s in order give the
   * matches in order, each starting 4 or 5 bytes before its own.
   */
  uint32_t p = s;
  for (uint32_t at = next_scheme_sep(in, s, e); at < e; at = next_scheme_sep(in, at + 3, e)) {
    uint32_t q;
    if (at >= p + 5 && in[at - 1] == 's' && http_at(in, at - 5)) q = at - 5;
    else if (at >= p + 4 && http_at(in, at - 4)) q = at - 4;
    else continue;
    uint32_t r = at + 3;
    while (r < e && url_byte(in[r])) r++;
    if (r == at + 3) continue;
    if (r - q > MAX_VALUE || may_hold_secret(in, q, r)) {
      count = saved;
      return 0;
    }
    emit(REC_VALUE | VALUE_URL << 8, q, r);
    p = r;
  }
  return 1;
}

static inline int word_byte(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static inline int starts(const uint8_t *in, uint32_t i, uint32_t e, const char *word) {
  for (uint32_t k = 0; word[k]; k++)
    if (i + k >= e || in[i + k] != (uint8_t)word[k]) return 0;
  return 1;
}

/* The length of the method (GET ... CONNECT) at in[i], followed by a space; 0 when there is none. */
static uint32_t method_at(const uint8_t *in, uint32_t i, uint32_t e) {
  /* By first byte: this runs at every byte of a log line, and most bytes start no method. */
  switch (in[i]) {
    case 'G': return starts(in, i, e, "GET ") ? 3 : 0;
    case 'P':
      return starts(in, i, e, "POST ") ? 4 : starts(in, i, e, "PUT ") ? 3 : starts(in, i, e, "PATCH ") ? 5 : 0;
    case 'D': return starts(in, i, e, "DELETE ") ? 6 : 0;
    case 'H': return starts(in, i, e, "HEAD ") ? 4 : 0;
    case 'O': return starts(in, i, e, "OPTIONS ") ? 7 : 0;
    case 'C': return starts(in, i, e, "CONNECT ") ? 7 : 0;
  }
  return 0;
}

/*
 * The request lines of in[s..e) as records after a REC_VALUE_STRING, as extract.ts's REQUEST_LINE
 * (/\b(GET|...|CONNECT) ((?:\/|https?:\/\/)[!-~]{0,2047}) HTTP\/\d(?:\.\d)?/g) finds them: the
 * value is the method, a space and the target. [!-~] holds no space, so the target is the whole
 * run of non-space bytes after its prefix, or there is no match there. 0 (and no records) when the
 * string must take the JavaScript path: a value clip() would cut, or one that may hold a secret.
 */
static int request_fast(const uint8_t *in, uint32_t s, uint32_t e) {
  uint32_t saved = count;
  emit(REC_VALUE_STRING, s, e);
  for (uint32_t p = s; p < e;) {
    uint32_t n = (p == s || !word_byte(in[p - 1])) ? method_at(in, p, e) : 0;
    if (n) {
      uint32_t t = p + n + 1, prefix = 0;
      if (t < e && in[t] == '/') prefix = 1;
      else if (starts(in, t, e, "http://")) prefix = 7;
      else if (starts(in, t, e, "https://")) prefix = 8;
      if (prefix) {
        uint32_t r = t + prefix;
        while (r < e && in[r] > ' ' && in[r] < 0x7f) r++;
        if (r - (t + prefix) <= 2047 && starts(in, r, e, " HTTP/") && r + 6 < e && in[r + 6] >= '0' &&
            in[r + 6] <= '9') {
          if (r - p > MAX_VALUE || may_hold_secret(in, p, r)) {
            count = saved;
            return 0;
          }
          emit(REC_VALUE | VALUE_REQUEST << 8, p, r);
          p = r + 7;
          if (p + 1 < e && in[p] == '.' && in[p + 1] >= '0' && in[p + 1] <= '9') p += 2;
          continue;
        }
      }
    }
    p++;
  }
  return 1;
}

/*
 * Where extract.ts's SQL pattern matches at in[p] (after a word boundary), the end of the match;
 * else 0. The pattern, /\b(?:SELECT\s[\s\S]{1,2000}?\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\S{1,200}\s+SET\s|
 * DELETE\s+FROM\s)/, on a string of printable ASCII, where \s can only be a space.
 */
static uint32_t sql_at(const uint8_t *in, uint32_t p, uint32_t e) {
  uint32_t q;
  switch (in[p]) {
    case 'S':
      if (!starts(in, p, e, "SELECT ")) return 0;
      for (q = p + 8; q <= p + 7 + 2000 && q + 6 <= e; q++)
        if (starts(in, q, e, " FROM ")) return q + 6;
      return 0;
    case 'I':
    case 'D':
      if (!starts(in, p, e, in[p] == 'I' ? "INSERT " : "DELETE ")) return 0;
      for (q = p + 7; q < e && in[q] == ' ';) q++;
      return starts(in, q, e, in[p] == 'I' ? "INTO " : "FROM ") ? q + 5 : 0;
    case 'U': {
      if (!starts(in, p, e, "UPDATE ")) return 0;
      for (q = p + 7; q < e && in[q] == ' ';) q++;
      uint32_t name = q;
      while (q < e && in[q] != ' ') q++;
      if (q == name || q - name > 200 || q == e) return 0;
      while (q < e && in[q] == ' ') q++;
      return starts(in, q, e, "SET ") ? q + 4 : 0;
    }
  }
  return 0;
}

/*
 * The SQL statements of in[s..e) as records after a REC_VALUE_STRING, as extract.ts finds them:
 * from the keyword to the next ';' or the string's end, spaces collapsed, trimmed. A value with two
 * spaces in a row (which extract.ts would collapse into a new string), one clip() would cut, or one
 * that may hold a secret sends the string down the JavaScript path (0, no records).
 */
static int sql_fast(const uint8_t *in, uint32_t s, uint32_t e) {
  uint32_t saved = count;
  emit(REC_VALUE_STRING, s, e);
  for (uint32_t p = s; p < e;) {
    uint32_t m = (p == s || !word_byte(in[p - 1])) ? sql_at(in, p, e) : 0;
    if (!m) {
      p++;
      continue;
    }
    uint32_t end = p;
    while (end < e && in[end] != ';') end++;
    for (uint32_t i = p + 1; i < end; i++)
      if (in[i] == ' ' && in[i - 1] == ' ') {
        count = saved;
        return 0;
      }
    if (in[end - 1] == ' ') end--; /* trim: one space at most, and the value starts with a keyword */
    if (end - p > MAX_VALUE || may_hold_secret(in, p, end)) {
      count = saved;
      return 0;
    }
    emit(REC_VALUE | VALUE_SQL << 8, p, end);
    p = m;
  }
  return 1;
}

/* Printable bytes (bits 0-15) of 16 bytes; NUL bytes in *zeros. */
static inline uint32_t masks16(const uint8_t *p, uint32_t *zeros) {
  v128_t v = wasm_v128_load(p);
  /* 0x20-0x7e plus 0x60 wrap to 0x80-0xde, the only bytes that become less than -33 (0xdf) as
   * signed: one add and one compare instead of two compares and an and. */
  v128_t pr = wasm_i8x16_lt(wasm_i8x16_add(v, wasm_i8x16_splat(0x60)), wasm_i8x16_splat(-33));
  *zeros = wasm_i8x16_bitmask(wasm_i8x16_eq(v, wasm_i8x16_splat(0)));
  return wasm_i8x16_bitmask(pr);
}

/* Bits at and above n (n < 64), else none. */
static inline uint64_t from_bit(uint32_t n) { return n >= 64 ? 0 : ~0ull << n; }

/*
 * Scans in[0..len) from `from_ascii` / `from_utf16` (bytes before them belong to runs carried over
 * from the previous chunk). Reads up to 63 bytes past len (the caller's buffer allows it; they are
 * masked off). Returns the number of records written to `records`.
 */
__attribute__((export_name("scan")))
uint32_t scan(const uint8_t *in, uint32_t len, uint32_t from_ascii, uint32_t from_utf16, uint32_t *records,
              uint32_t url_only, uint32_t request_only, uint32_t sql_only) {
  out = records;
  count = 0;
  uint32_t resume = from_ascii, resume16 = from_utf16;
  int carried = 0, carried16 = 0;
  uint32_t from = from_ascii < from_utf16 ? from_ascii : from_utf16;
  /* Carries from the previous block: printable (ASCII view), pair ends (UTF-16 view), partials. */
  uint64_t pm = 0, px1 = 0, px2 = 0, pmu = 0, pq = 0, py2 = 0;
  for (uint32_t block = from & ~63u; block < len && !(carried && carried16); block += 64) {
    /*
     * The fast path: whole blocks past every start and resume point, where nothing is masked, until
     * one ends a run (on random bytes, about one block in seventy). It keeps few values live, so V8
     * keeps them in registers; the full step below then takes that block again.
     */
    if (!carried && !carried16 && block >= resume && block >= resume16 && block >= from_ascii &&
        block >= from_utf16) {
      while (block + 64 <= len) {
        uint32_t z0, z1, z2, z3;
        uint64_t m = (uint64_t)masks16(in + block, &z0) | (uint64_t)masks16(in + block + 16, &z1) << 16 |
                     (uint64_t)masks16(in + block + 32, &z2) << 32 | (uint64_t)masks16(in + block + 48, &z3) << 48;
        uint64_t z = (uint64_t)z0 | (uint64_t)z1 << 16 | (uint64_t)z2 << 32 | (uint64_t)z3 << 48;
        uint64_t x1 = m & (m << 1 | pm >> 63);
        uint64_t x2 = x1 & (x1 << 2 | px1 >> 62);
        uint64_t q = z & (m << 1 | pmu >> 63);
        uint64_t y2 = q & (q << 2 | pq >> 62);
        if ((x2 & (x2 << 4 | px2 >> 60)) | (y2 & (y2 << 4 | py2 >> 60) & (y2 << 8 | py2 >> 56))) break;
        pm = m, px1 = x1, px2 = x2, pmu = m, pq = q, py2 = y2;
        block += 64;
      }
      if (block >= len) break;
    }
    uint32_t z0, z1, z2, z3;
    uint64_t m = (uint64_t)masks16(in + block, &z0) | (uint64_t)masks16(in + block + 16, &z1) << 16 |
                 (uint64_t)masks16(in + block + 32, &z2) << 32 | (uint64_t)masks16(in + block + 48, &z3) << 48;
    uint64_t z = (uint64_t)z0 | (uint64_t)z1 << 16 | (uint64_t)z2 << 32 | (uint64_t)z3 << 48;
    if (block + 64 > len) {
      uint64_t valid = ~from_bit(len - block);
      m &= valid;
      z &= valid;
    }
    uint64_t ma = m, mu = m, zu = z;
    if (block < from_ascii) ma &= from_bit(from_ascii - block);
    if (block < from_utf16) {
      mu &= from_bit(from_utf16 - block);
      zu &= from_bit(from_utf16 - block);
    }
    /* ASCII: bit k set when bytes k-7..k are all printable. */
    uint64_t x1 = ma & (ma << 1 | pm >> 63);
    uint64_t x2 = x1 & (x1 << 2 | px1 >> 62);
    uint64_t x4 = x2 & (x2 << 4 | px2 >> 60);
    /* UTF-16: bit k set when byte k is NUL after a printable byte: a pair ends at k; y6 when six do. */
    uint64_t q = zu & (mu << 1 | pmu >> 63);
    uint64_t y2 = q & (q << 2 | pq >> 62);
    uint64_t y6 = y2 & (y2 << 4 | py2 >> 60) & (y2 << 8 | py2 >> 56);
    pm = ma, px1 = x1, px2 = x2, pmu = mu, pq = q, py2 = y2;
    if (!carried && resume > block) x4 &= from_bit(resume - block);
    while (x4 && !carried) {
      uint32_t at = block + __builtin_ctzll(x4);
      uint32_t s = at, e = at + 1;
      while (s > resume && printable(in[s - 1])) s--;
      while (e < len && printable(in[e])) e++;
      if (e == len) {
        emit(REC_ASCII_OPEN, s, e);
        carried = 1;
        break;
      }
      uint32_t kind = flags(REC_ASCII, in, s, e, 1);
      uint32_t mask = kind >> 8;
      if (!((url_only && mask == url_only && url_fast(in, s, e)) ||
            (request_only && mask == request_only && request_fast(in, s, e)) ||
            (sql_only && mask && !(mask & ~sql_only) && sql_fast(in, s, e))))
        emit(mask && !may_hold_secret(in, s, e) ? kind | REC_NO_SECRET : kind, s, e);
      resume = e + 1;
      x4 &= from_bit(resume - block);
    }
    if (!carried16 && resume16 > block) y6 &= from_bit(resume16 - block);
    while (y6 && !carried16) {
      uint32_t at = block + __builtin_ctzll(y6); /* the NUL of a pair */
      uint32_t s = at - 1, e = at + 1;
      while (s >= resume16 + 2 && printable(in[s - 2]) && in[s - 1] == 0) s -= 2;
      while (e + 1 < len && printable(in[e]) && in[e + 1] == 0) e += 2;
      if (e + 1 >= len && (e == len || printable(in[e]))) {
        emit(REC_UTF16_OPEN, s, len);
        carried16 = 1;
        break;
      }
      emit(flags(REC_UTF16, in, s, e, 2), s, e);
      resume16 = e;
      y6 &= from_bit(resume16 - block);
    }
  }
  /* The run at the very end, however short, may continue in the next chunk. */
  if (!carried) {
    uint32_t s = len;
    while (s > resume && printable(in[s - 1])) s--;
    if (s < len) emit(REC_ASCII_OPEN, s, len);
  }
  if (!carried16) {
    uint32_t s = len;
    if (s >= resume16 + 1 && printable(in[s - 1])) s -= 1; /* a printable byte whose NUL may come next */
    while (s >= resume16 + 2 && printable(in[s - 2]) && in[s - 1] == 0) s -= 2;
    if (s < len && (len - s >= 2 || printable(in[s]))) emit(REC_UTF16_OPEN, s, len);
  }
  return count;
}
