/*
 * fill-heap: makes a large, realistic-looking core dump for bench/analyze.bench.ts.
 *
 * It fills N MiB of heap (default 1024) with pseudo-random bytes, plants a few thousand copies of six
 * URLs at random positions, then abort()s so the kernel dumps it. Random bytes rather than zeros so
 * that neither the kernel, a compressor nor a scanner gets an easy ride; a PRNG rather than
 * /dev/urandom so a 1 GiB fill takes well under a second.
 *
 * Build: gcc -O2 -Wl,-z,now -o fill-heap fill-heap.c
 *   -z now matters: with lazy binding, the first call of each libc function goes through the
 *   resolver, which saves the vector registers (still holding URL bytes from memcpy) on the stack,
 *   and the dump then holds a stray URL fragment that grep counts as one more distinct match.
 *
 * Usage: fill-heap [--wait] [MiB]
 *   --wait  instead of aborting, print "ready <pid>" and sleep until killed, so the caller can take
 *           the dump with gdb's gcore when the kernel would not write one.
 *
 * On stdout it prints one "planted <count> <url>" line per URL: the ground truth the bench checks
 * both grep and the analyzer against.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Distinct URLs with skewed frequencies (about 3000 in all), so a report that merges, drops or
 * miscounts one shows up as a count mismatch. Only characters any sane URL matcher accepts
 * (no brackets, quotes, or percent-escapes), so a mismatch means a real counting bug rather than a
 * debatable character class.
 *
 * The scheme is kept apart from the rest and the URL is only assembled at run time (and wiped before
 * the dump): for a binary this small, .rodata shares a file page with the RELRO segment, which the
 * dynamic linker dirties, so whole literals would be dumped too and every URL would appear once more
 * in the core than was planted.
 */
static const struct {
  const char *scheme;
  const char *rest;
  unsigned count;
} URLS[] = {
    {"http", "radio.example.net/live/stream.mp3", 1200},
    {"https", "api.example.com/v1/feeds?id=42", 800},
    {"https", "cdn.example.org/assets/app.js", 500},
    {"http", "metrics.internal.example:9100/metrics", 300},
    {"https", "auth.example.com/oauth2/token?grant_type=client_credentials&scope=read", 150},
    {"https", "hooks.example.com/services/T0001/B0002/abc-XYZ_123", 27},
};
#define N_URLS (sizeof URLS / sizeof URLS[0])

/*
 * Every planted URL is followed by one of these bytes. The reference pipeline's grep
 * (`https?://[^[:space:]"]+` under LC_ALL=C -a) runs on through NULs, control and high bytes, so a
 * URL followed by random bytes would come out as a unique string of garbage and the grep counts
 * would be useless; whitespace and a double quote are where both grep and the analyzer stop.
 */
static const char TERMINATORS[] = {'"', ' ', '\n', '\t', '\r'};

/* The heap pointer is published through a volatile global so the compiler cannot prove the fill is
 * dead (nothing reads it before abort) and drop it. */
void *volatile heap_keep;

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64*: fast, and good enough that the filler has no exploitable structure. */
static inline uint64_t next_random(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1du;
}

/* Writes all of buf to stdout without stdio, whose buffer would live on the (dumped) heap. */
static void write_all(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(STDOUT_FILENO, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("fill-heap: write");
      exit(1);
    }
    buf += n;
    len -= (size_t)n;
  }
}

int main(int argc, char **argv) {
  int wait_for_gcore = 0;
  unsigned long mib = 1024;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--wait") == 0) {
      wait_for_gcore = 1;
    } else {
      char *end;
      errno = 0;
      mib = strtoul(argv[i], &end, 10);
      if (errno != 0 || *end != '\0' || mib == 0) {
        fprintf(stderr, "usage: fill-heap [--wait] [MiB]\n");
        return 2;
      }
    }
  }

  size_t size = (size_t)mib << 20;
  uint8_t *heap = malloc(size);
  if (heap == NULL) {
    fprintf(stderr, "fill-heap: cannot allocate %lu MiB\n", mib);
    return 1;
  }
  heap_keep = heap;

  /* Ask for transparent huge pages (advisory; ignored where THP is off). First-touch page faults,
   * not the PRNG, dominate the fill, especially in a VM: 4 KiB faults made a 1 GiB fill take 3-5 s
   * here against 0.3 s of actual writing. The pages stay anonymous private memory, dumped as usual. */
  uintptr_t huge = 2u << 20;
  uintptr_t from = ((uintptr_t)heap + huge - 1) & ~(huge - 1);
  uintptr_t to = ((uintptr_t)heap + size) & ~(huge - 1);
  if (to > from) madvise((void *)from, to - from, MADV_HUGEPAGE);

  /* Writing every byte is what makes the pages resident, and so dumped; untouched pages of a big
   * malloc are never faulted in and the kernel leaves them out of the core. */
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t r = next_random();
    memcpy(heap + i, &r, 8);
  }

  /* Assembled in .bss (dumped) and wiped before the dump; see the URLS comment. */
  static char urls[N_URLS][128];
  static size_t lens[N_URLS];
  size_t total = 0, longest = 0;
  for (size_t u = 0; u < N_URLS; u++) {
    int n = snprintf(urls[u], sizeof urls[u], "%s://%s", URLS[u].scheme, URLS[u].rest);
    if (n < 0 || (size_t)n >= sizeof urls[u]) {
      fprintf(stderr, "fill-heap: URL %zu is too long\n", u);
      return 1;
    }
    lens[u] = (size_t)n;
    total += URLS[u].count;
    if (lens[u] > longest) longest = lens[u];
  }

  /* One shuffled slot per occurrence: positions are random, frequencies interleave, and no two
   * URLs can overlap (which would silently change the ground truth). */
  size_t slot = size / total;
  if (slot < longest + 2) {
    fprintf(stderr, "fill-heap: %lu MiB is too small for %zu URLs\n", mib, total);
    return 2;
  }
  unsigned char *order = malloc(total);
  if (order == NULL) return 1;
  for (size_t u = 0, k = 0; u < N_URLS; u++) {
    for (unsigned c = 0; c < URLS[u].count; c++) order[k++] = (unsigned char)u;
  }
  for (size_t k = total - 1; k > 0; k--) {
    size_t j = next_random() % (k + 1);
    unsigned char t = order[k];
    order[k] = order[j];
    order[j] = t;
  }
  for (size_t k = 0; k < total; k++) {
    size_t u = order[k];
    size_t at = k * slot + next_random() % (slot - lens[u] - 1);
    memcpy(heap + at, urls[u], lens[u]);
    heap[at + lens[u]] = (uint8_t)TERMINATORS[next_random() % sizeof TERMINATORS];
  }
  free(order);

  /* The line is built on the stack, which is dumped too, so it is wiped after writing. */
  char line[256];
  for (size_t u = 0; u < N_URLS; u++) {
    int n = snprintf(line, sizeof line, "planted %u %s\n", URLS[u].count, urls[u]);
    write_all(line, (size_t)n);
  }
  explicit_bzero(line, sizeof line);
  explicit_bzero(urls, sizeof urls);

  if (wait_for_gcore) {
    int n = snprintf(line, sizeof line, "ready %ld\n", (long)getpid());
    write_all(line, (size_t)n);
    for (;;) pause();
  }
  abort();
}
