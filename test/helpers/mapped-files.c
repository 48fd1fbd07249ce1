/*
 * mapped-files.c: like crash.c's "abort" kind, but first maps what a real server maps besides its
 * shared libraries, so its core's NT_FILE lists them: the data file named by argv[1] (the tests
 * name it like a JVM's /tmp/hsperfdata_<user>/<pid>) and, where the kernel allows io_uring, an
 * io_uring ring (anon_inode:[io_uring]). Honours NIGHTSHIFT_WAIT_FOR_GCORE as crash.c does.
 *
 *   gcc -O0 -g -pthread -DCRASH_KIND='"abort"' -o mapped-files-abort mapped-files.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wait-for-gcore.h"

#ifndef CRASH_KIND
#error "build with -DCRASH_KIND='\"abort\"'"
#endif

/* struct io_uring_params is 120 bytes; only sq_off (at 40) matters for the mapping. */
static void map_io_uring(void) {
#ifdef __NR_io_uring_setup
  unsigned char params[120];
  memset(params, 0, sizeof params);
  long fd = syscall(__NR_io_uring_setup, 4, params);
  if (fd < 0) return; /* disabled here (sysctl, seccomp): the test then does not expect it */
  /* IORING_OFF_SQ_RING is 0: map the submission ring. */
  mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, (int)fd, 0);
#endif
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) return 3;
  if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED) return 4;
  map_io_uring();
  return wait_for_gcore_or_abort();
}
