/*
 * wide-string.c: copies a UTF-16LE URL (what Windows-born and Java/JS runtimes keep) onto the heap,
 * then aborts, so a test can find that URL as UTF-16LE evidence in a real core. Built by
 * makeCCore(dir, 'abort', { source }) with -DCRASH_KIND="abort"; honours NIGHTSHIFT_WAIT_FOR_GCORE
 * as crash.c does.
 */
#include <stdlib.h>
#include <string.h>
#include <uchar.h>

#include "wait-for-gcore.h"

#define WIDE_URL u"https://utf16.example.test/wide/path?q=1"

char16_t *volatile wide_url;

int main(void) {
  static const char16_t text[] = WIDE_URL;
  wide_url = malloc(sizeof text);
  if (wide_url == NULL) return 2;
  memcpy(wide_url, text, sizeof text);
  return wait_for_gcore_or_abort();
}
