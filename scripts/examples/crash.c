/*
 * crash.c: a tiny native program that dies on purpose, so Nightshift's tests and
 * examples/ get REAL core dumps of a native process instead of hand-made ELF files.
 *
 * Build one binary per way of dying (the kind is fixed at compile time so the
 * command line stays free for whatever arguments a test wants to see in the core):
 *
 *   gcc -O0 -g -pthread -DCRASH_KIND='"abort"'   -o crash-abort   crash.c
 *   gcc -O0 -g -pthread -DCRASH_KIND='"segv"'    -o crash-segv    crash.c
 *   gcc -O0 -g -pthread -DCRASH_KIND='"threads"' -o crash-threads crash.c
 *
 * abort    calls abort()                                        -> SIGABRT (6)
 * segv     writes through a NULL pointer                        -> SIGSEGV (11)
 * threads  starts 3 threads that block, then main aborts        -> SIGABRT, 4 threads
 *
 * Every kind first copies "http://example.test/c/<kind>" into heap memory, a string
 * a test can look for in the core.  All arguments are ignored, so a caller can make
 * the command line as long as it likes (the kernel keeps only 80 bytes of it in the
 * core's NT_PRPSINFO note).
 *
 * With NIGHTSHIFT_WAIT_FOR_GCORE=1 in the environment it sets everything up, prints
 * "READY <pid>" and then blocks reading stdin instead of crashing, so that gdb's gcore
 * can snapshot it; it exits when stdin closes, so it never outlives its parent.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CRASH_KIND
#error "build with -DCRASH_KIND='\"abort\"' (or \"segv\" or \"threads\")"
#endif

#define URL_PREFIX "http://example.test/c/"
#define EXTRA_THREADS 3

/* Global, so the heap copy stays reachable (and obviously live) in the core. */
char *volatile heap_url;

static pthread_barrier_t started;

static void *blocker(void *arg) {
  (void)arg;
  pthread_barrier_wait(&started);
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *kind = CRASH_KIND;

  heap_url = malloc(sizeof URL_PREFIX + strlen(kind));
  if (heap_url == NULL) return 2;
  strcpy(heap_url, URL_PREFIX);
  strcat(heap_url, kind);

  if (strcmp(kind, "threads") == 0) {
    pthread_t threads[EXTRA_THREADS];
    /* The barrier makes sure all 3 threads exist and run before main goes on. */
    pthread_barrier_init(&started, NULL, EXTRA_THREADS + 1);
    for (int i = 0; i < EXTRA_THREADS; i++) {
      if (pthread_create(&threads[i], NULL, blocker, NULL) != 0) return 3;
    }
    pthread_barrier_wait(&started);
  }

  const char *wait = getenv("NIGHTSHIFT_WAIT_FOR_GCORE");
  if (wait != NULL && strcmp(wait, "1") == 0) {
    char buf[64];
    printf("READY %ld\n", (long)getpid());
    fflush(stdout);
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    return 0;
  }

  if (strcmp(kind, "segv") == 0) {
    /* volatile: without it gcc may drop the store or turn it into a trap. */
    int *volatile nowhere = NULL;
    *nowhere = 42;
    return 4; /* not reached */
  }
  abort();
}
