/*
 * url-heap.c: fills its heap with COUNT distinct noise URLs, each in its own malloc'd block, plants
 * one more value among them at the start, the middle or the end of that allocation order (or
 * nowhere), then aborts: a text-dense core whose distinct values far outnumber any cap, with one
 * value whose place in memory the test chooses. Built by makeCCore(dir, 'abort', { source, args })
 * with -DCRASH_KIND="abort"; honours NIGHTSHIFT_WAIT_FOR_GCORE as crash.c does.
 *
 * Usage: url-heap-abort COUNT SEED start|middle|end|none REVERSED-PLANTED
 *   The planted value is given reversed, so the command line on the stack (which is in the core)
 *   does not hold it: a core made with "none" must not contain it anywhere. SEED keeps the noise
 *   of different cores apart, so the planted value is the only URL they share (besides libc's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wait-for-gcore.h"

char **volatile keep;

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: url-heap COUNT SEED start|middle|end|none REVERSED-PLANTED\n");
    return 2;
  }
  unsigned long count = strtoul(argv[1], NULL, 10);
  unsigned long seed = strtoul(argv[2], NULL, 10);
  const char *where = argv[3];
  const char *reversed = argv[4];
  unsigned long at = count + 1;
  if (strcmp(where, "start") == 0) at = 0;
  else if (strcmp(where, "middle") == 0) at = count / 2;
  else if (strcmp(where, "end") == 0) at = count;
  keep = malloc((count + 1) * sizeof *keep);
  if (keep == NULL) return 2;
  unsigned long k = 0;
  for (unsigned long i = 0; i <= count; i++) {
    if (i == at) {
      size_t n = strlen(reversed);
      char *planted = malloc(n + 1);
      if (planted == NULL) return 2;
      for (size_t j = 0; j < n; j++) planted[j] = reversed[n - 1 - j];
      planted[n] = '\0';
      keep[k++] = planted;
    }
    if (i == count) break;
    char *url = malloc(40);
    if (url == NULL) return 2;
    snprintf(url, 40, "http://noise%lu.test/%lu", seed, i);
    keep[k++] = url;
  }
  return wait_for_gcore_or_abort();
}
