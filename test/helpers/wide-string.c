/*
 * wide-string.c: copies a UTF-16LE URL (what Windows-born and Java/JS runtimes keep) onto the heap,
 * then aborts, so a test can find that URL as UTF-16LE evidence in a real core. Built by
 * makeCCore(dir, 'abort', { source }) with -DCRASH_KIND="abort"; honours NIGHTSHIFT_WAIT_FOR_GCORE
 * as crash.c does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uchar.h>
#include <unistd.h>

#define WIDE_URL u"https://utf16.example.test/wide/path?q=1"

char16_t *volatile wide_url;

int main(void) {
  static const char16_t text[] = WIDE_URL;
  wide_url = malloc(sizeof text);
  if (wide_url == NULL) return 2;
  memcpy(wide_url, text, sizeof text);
  const char *wait = getenv("NIGHTSHIFT_WAIT_FOR_GCORE");
  if (wait != NULL && strcmp(wait, "1") == 0) {
    char buf[64];
    printf("READY %ld\n", (long)getpid());
    fflush(stdout);
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    return 0;
  }
  abort();
}
