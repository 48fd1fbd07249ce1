#!/usr/bin/env bash
# Make the small set of REAL example core dumps that a newcomer analyses with
#
#   ./bin/nightshift analyze examples/
#
# It replays the incident in miniature: a stream server (examples/stream_server.py)
# plays an endless internet radio stream, three Python web workers
# (examples/worker.py) get stuck reading it as if it were an RSS feed, a fourth
# reads a real, finite feed; then each gets SIGABRT, as the health check did, and
# leaves a core. One native program (examples/crash.c) aborts as well. The same
# three source files make the test fixtures (test/helpers/cores.ts), so the
# examples are exactly what the tests exercise.
#
# Output (PIDs vary from run to run):
#   web-1.core.<pid>.gz          stream worker, gzip -9 (as someone gzipped core.<pid>)
#   web-2.core.tar.gz            stream worker, as `docker cp web-2:/app/core.<pid> - | gzip -9`
#   web-3.core.<pid>.gz          stream worker
#   web-4.core.<pid>.gz          feed worker (the one that is NOT stuck on the stream)
#   crash-abort.core.<pid>.gz    native program, abort() (SIGABRT)
#
# Needs bash, python3 (standard library only), gcc, tar and gzip; no Node. The kernel
# writes the cores when core_pattern allows a core in the process's directory;
# otherwise (core_pattern piping to systemd-coredump or apport) gdb's gcore takes
# them instead, which records no signal. NIGHTSHIFT_CORE_VIA=gcore forces that path.
#
# Children run with a minimal environment (env -i) plus two FAKE secrets: a
# process's environment is copied into its core, and these files get committed.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUTDIR=$1
SOURCES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/examples"
TIMEOUT_S=20

die() {
  echo "make-example-cores: $*" >&2
  exit 1
}

for tool in python3 gcc tar gzip; do
  command -v "$tool" >/dev/null || die "needs $tool; .ci/run installs it"
done

# The real interpreter, not a wrapper such as a pyenv shim: that is what the core's
# NT_FILE and psargs should name (and what gdb needs next to the core).
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
[[ -x $PYTHON ]] || die "python3 reports no usable sys.executable ($PYTHON)"

# Can the kernel drop the core into the crashing process's cwd?
CORE_PATTERN=$(cat /proc/sys/kernel/core_pattern)
VIA=${NIGHTSHIFT_CORE_VIA:-kernel}
[[ $VIA == kernel || $VIA == gcore ]] || die "NIGHTSHIFT_CORE_VIA must be kernel or gcore, not $VIA"
if [[ $VIA == gcore || $CORE_PATTERN == '|'* || $CORE_PATTERN == */* ]] ||
  [[ $(bash --norc -c 'ulimit -c unlimited 2>/dev/null || ulimit -c "$(ulimit -H -c)"; ulimit -c') == 0 ]]; then
  command -v gcore >/dev/null ||
    die "the kernel will not write cores here (core_pattern: $CORE_PATTERN) and gcore (gdb) is missing"
  VIA=gcore
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nightshift-examples.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

CHILD_ENV=(
  env -i
  "PATH=$PATH"
  LANG=C.UTF-8
  DATABASE_PASSWORD=hunter2-s3cret
  SENTRY_DSN=https://abc123publickey@o4711.ingest.sentry.io/42
)

# wait_for_line FILE REGEX WHAT: until a line of FILE matches, or fail after TIMEOUT_S.
wait_for_line() {
  local file=$1 regex=$2 what=$3 tries=$((TIMEOUT_S * 10))
  until grep -qE "$regex" "$file" 2>/dev/null; do
    tries=$((tries - 1))
    ((tries > 0)) || die "$what did not print /$regex/ within ${TIMEOUT_S}s: $(tail -c 2000 "$file.err" 2>/dev/null)"
    sleep 0.1
  done
}

# start_crasher DIR CMD...: run CMD in DIR (fresh) with RLIMIT_CORE raised and the
# minimal environment, stdin from $CHILD_STDIN; `exec` keeps the PID, left in $STARTED.
CHILD_STDIN=/dev/null
start_crasher() {
  local dir=$1
  shift
  mkdir "$dir"
  (
    cd "$dir"
    ulimit -c unlimited 2>/dev/null || ulimit -c "$(ulimit -H -c)"
    exec "${CHILD_ENV[@]}" "$@"
  ) >"$dir.out" 2>"$dir.err" <"$CHILD_STDIN" 3>&- &
  STARTED=$!
  PIDS+=("$STARTED")
}

# await_abort DIR PID: wait for PID to die of SIGABRT and leave its core as DIR/core.
await_abort() {
  local dir=$1 pid=$2 status=0 files
  wait "$pid" 2>/dev/null || status=$?
  ((status == 128 + 6)) || die "pid $pid ended with status $status, not SIGABRT: $(tail -c 2000 "$dir.err")"
  # The process ran alone in DIR, so the only file there is its core, whatever
  # core_pattern/core_uses_pid named it.
  files=("$dir"/*)
  [[ ${#files[@]} -eq 1 && -f ${files[0]} ]] ||
    die "the kernel wrote no core for $pid in $dir (core_pattern: $CORE_PATTERN)"
  [[ ${files[0]} == "$dir/core" ]] || mv "${files[0]}" "$dir/core"
}

# take_core DIR PID: make the live PID dump core into DIR/core (SIGABRT, or gcore then kill).
take_core() {
  local dir=$1 pid=$2
  if [[ $VIA == kernel ]]; then
    kill -ABRT "$pid"
    await_abort "$dir" "$pid"
    return
  fi
  gcore -o "$dir/core" "$pid" >"$dir.gcore.log" 2>&1 || true
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [[ -s "$dir/core.$pid" ]] || die "gcore wrote no core for $pid: $(tail -c 2000 "$dir.gcore.log")"
  mv "$dir/core.$pid" "$dir/core"
}

echo "making example cores in $OUTDIR (via $VIA, python: $PYTHON)"

# --- the stream server ------------------------------------------------------
"$PYTHON" -I -S "$SOURCES/stream_server.py" --port 0 >"$WORK/server.out" 2>"$WORK/server.out.err" </dev/null &
PIDS+=("$!")
wait_for_line "$WORK/server.out" '^LISTENING [0-9]+$' 'the stream server'
PORT=$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$WORK/server.out")
STREAM_URL="http://127.0.0.1:$PORT/live/radio.mp3"
FEED_URL="http://127.0.0.1:$PORT/feeds/ok.xml"

# --- four web workers: three stuck on the stream, one done with its feed ----
WORKER_PID=()
for i in 1 2 3 4; do
  url=$STREAM_URL
  ((i <= 3)) || url=$FEED_URL
  # --idle forever: stdin is /dev/null here, so the default (idle until stdin closes) would exit at once.
  start_crasher "$WORK/web-$i" "$PYTHON" -I -S "$SOURCES/worker.py" --name "web-$i" --url "$url" --idle forever
  WORKER_PID[$i]=$STARTED
done
for i in 1 2 3 4; do
  wait_for_line "$WORK/web-$i.out" '^READY ' "worker web-$i"
  if ((i <= 3)) && grep -q 'eof=1' "$WORK/web-$i.out"; then
    die "worker web-$i reached the end of the endless stream"
  fi
done
for i in 1 2 3 4; do
  take_core "$WORK/web-$i" "${WORKER_PID[$i]}"
done

# --- one native crash ---------------------------------------------------------
mkdir "$WORK/bin"
gcc -O0 -g -pthread -DCRASH_KIND='"abort"' -o "$WORK/bin/crash-abort" "$SOURCES/crash.c"
if [[ $VIA == gcore ]]; then
  # Asked to, crash.c waits for gcore instead of aborting, until its stdin closes:
  # give it a FIFO that this script holds open.
  CHILD_ENV+=(NIGHTSHIFT_WAIT_FOR_GCORE=1)
  mkfifo "$WORK/crash-stdin"
  exec 3<>"$WORK/crash-stdin"
  CHILD_STDIN="$WORK/crash-stdin"
fi
start_crasher "$WORK/crash-abort" "$WORK/bin/crash-abort" --job feeds-refresh --every 5m
CRASH_PID=$STARTED
if [[ $VIA == gcore ]]; then
  wait_for_line "$WORK/crash-abort.out" '^READY ' 'crash-abort'
  take_core "$WORK/crash-abort" "$CRASH_PID"
else
  await_abort "$WORK/crash-abort" "$CRASH_PID"
fi

# --- package: gzip -9 each, one as a docker cp tar stream ---------------------
mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/web-*.core.*gz "$OUTDIR"/crash-abort.core.*gz
package() { # NAME DIR PID: gzip DIR/core as it would be named on the host, core.<pid>
  local name=$1 dir=$2 pid=$3
  mv "$dir/core" "$dir/core.$pid"
  gzip -9 -c "$dir/core.$pid" >"$OUTDIR/$name.core.$pid.gz"
}
package web-1 "$WORK/web-1" "${WORKER_PID[1]}"
# docker cp <container>:/app/core.<pid> - emits a tar holding core.<pid>; GNU tar
# in PAX format without atime/ctime/sub-second mtime matches docker's headers.
mv "$WORK/web-2/core" "$WORK/web-2/core.${WORKER_PID[2]}"
tar --format=pax --pax-option=delete=atime,delete=ctime,delete=mtime --numeric-owner \
  -C "$WORK/web-2" -cf - "core.${WORKER_PID[2]}" | gzip -9 >"$OUTDIR/web-2.core.tar.gz"
package web-3 "$WORK/web-3" "${WORKER_PID[3]}"
package web-4 "$WORK/web-4" "${WORKER_PID[4]}"
package crash-abort "$WORK/crash-abort" "$CRASH_PID"

echo "stream: $STREAM_URL (web-1..3), feed: $FEED_URL (web-4)"
ls -l "$OUTDIR"/web-*.core.*gz "$OUTDIR"/crash-abort.core.*gz
echo "total: $(du -cb "$OUTDIR"/web-*.core.*gz "$OUTDIR"/crash-abort.core.*gz | tail -1 | cut -f1) bytes"
