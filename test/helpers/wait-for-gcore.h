/*
 * wait-for-gcore.h: how each helper program ends, as crash.c does. With NIGHTSHIFT_WAIT_FOR_GCORE=1
 * it prints "READY <pid>" and blocks until stdin closes (the test takes the core with gcore while
 * it waits) and then exits 0; otherwise it aborts, so the kernel writes the core. Included by the
 * helpers next to it; gcc finds it beside the source file, so compileCrasher (cores.ts) needs no -I.
 */
#ifndef NIGHTSHIFT_WAIT_FOR_GCORE_H
#define NIGHTSHIFT_WAIT_FOR_GCORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int wait_for_gcore_or_abort(void) {
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

#endif
