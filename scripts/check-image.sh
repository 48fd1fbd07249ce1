#!/usr/bin/env bash
# Proves the container image (README, "Install"), with no registry: a Debian 12 root filesystem made
# by debootstrap from Debian's packages is imported with `podman import` and passed as the
# Containerfile's BASE_IMAGE; the image is built (`podman build --network=host`, which reaches
# Debian's mirror and the npm registry), then run as it ships: `serve` as the non-root user under
# tini. Checked: the image's HEALTHCHECK passes (so /healthz answers), /readyz, the user is not
# root, Node.js 24, bubblewrap, ssh and zstd are there, serve says evidence scripts are refused in
# the container (see below), `analyze` of
# the demo core inside it reports what the checkout does, and `podman stop` ends it with status 0.
# Needs root, podman and runc, debootstrap, and the checkout's `npm ci` (its bin/nightshift makes
# the report compared with). Podman runs on storage, a run root and locks of its own in a temp
# directory (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF), so other podman users of the machine and
# this check do not see each other; all of it is removed at the end. About 6 minutes here (README).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail() {
  echo "check-image: FAIL: $*" >&2
  exit 1
}
step() { echo "check-image: [$SECONDS s] $*"; }

[ "$(id -u)" = 0 ] || fail "needs root: debootstrap, and podman on runc with its own storage"
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install podman runc debootstrap)"
done
[ -x "$root/node_modules/.bin/node" ] || fail "run npm ci first: the checkout's report is compared with the image's"

# Debian's mirror as apt on this machine has it (deb822 first, then the one-line format).
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $2 !~ /^\[/ && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nightshift-image.XXXXXX")
chmod 0755 "$tmp" # the container's user reads the demo core mounted from here
base=localhost/nightshift-check-base:bookworm
image=localhost/nightshift-check:$$
container=nightshift-check-$$
export CONTAINERS_STORAGE_CONF=$tmp/storage.conf CONTAINERS_CONF=$tmp/containers.conf
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
graphroot = "$tmp/storage"
runroot = "$tmp/run"
EOF
# What works on this kind of machine: runc (crun refuses hybrid cgroups), cgroupfs (no systemd),
# events in a file; and file locks in tmp_dir instead of the shared /dev/shm/libpod_lock.
cat >"$CONTAINERS_CONF" <<EOF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$tmp/events.log"
tmp_dir = "$tmp/libpod"
lock_type = "file"
volume_path = "$tmp/storage/volumes"
EOF
# The default nofile limit is refused here ("setrlimit RLIMIT_NOFILE: operation not permitted").
ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

cleanup() {
  local status=$?
  # Containers first (their mounts), then the private storage with every image in it.
  podman rm --all --force --time 0 >/dev/null 2>&1 || true
  grep -o " $tmp/[^ ]*" /proc/mounts | sort -r | xargs -r -n 1 umount -l 2>/dev/null || true
  rm -rf "$tmp"
  echo "check-image: [$SECONDS s] cleaned up (exit status $status)"
}
trap cleanup EXIT

step "debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
  tail -n 20 "$tmp/debootstrap.log" >&2
  fail "debootstrap failed (log above)"
}
# As Debian's own images: no package cache or lists in the base (the Containerfile runs apt-get update).
rm -rf "$tmp"/rootfs/var/cache/apt/archives/*.deb "$tmp"/rootfs/var/lib/apt/lists/*
tar -C "$tmp/rootfs" -cf - . | podman import --quiet - "$base" >/dev/null
rm -rf "$tmp/rootfs"

step "podman build (BASE_IMAGE=$base)"
# The host's CA bundle for npm, where the registry is reached through a TLS-intercepting proxy;
# --layers=false: no cache wanted, and on vfs every committed layer is a full copy.
podman build --format docker --layers=false --network=host "${ulimits[@]}" \
  --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg EXTRA_CA_CERTS=/run/host-ca.crt \
  --build-arg BASE_IMAGE="$base" -f Containerfile -t "$image" . >"$tmp/build.log" 2>&1 || {
  tail -n 40 "$tmp/build.log" >&2
  fail "podman build failed (log above)"
}
user=$(podman image inspect "$image" --format '{{.Config.User}}')
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || fail "the image runs as '${user:-root}', not a user of its own"
podman image inspect "$image" --format '{{json .Config.Healthcheck}}' | grep -q /healthz ||
  fail "the image has no HEALTHCHECK on /healthz (built without --format docker?)"
echo "  ok  image $(podman image inspect "$image" --format '{{.Size}}') bytes, user $user, HEALTHCHECK on /healthz"

# The demo core at the same path here and in the container, so the two reports can be compared.
mkdir "$tmp/demo"
cp -p examples/crash-abort.core.30457.gz "$tmp/demo/demo.core.gz"
chmod 0755 "$tmp/demo"
chmod 0644 "$tmp/demo/demo.core.gz"
"$root/bin/nightshift" analyze --json --workers 2 "$tmp/demo/demo.core.gz" | grep -v '"generatedAt"' >"$tmp/want.json"

step "podman run (serve, no network)"
# --health-interval=disable: no systemd here for podman's healthcheck timers; the check is run below.
# (podman 4.3 still logs that it cannot reach systemd: kept in a file, shown only on failure.)
podman run -d --name "$container" --network=none --health-interval=disable "${ulimits[@]}" \
  --volume "$tmp/demo:$tmp/demo:ro" "$image" >/dev/null 2>"$tmp/run.log" || {
  cat "$tmp/run.log" >&2
  fail "podman run failed (log above)"
}
healthy=no
for _ in $(seq 1 120); do
  if podman healthcheck run "$container" >/dev/null 2>&1; then
    healthy=yes
    break
  fi
  [ "$(podman inspect "$container" --format '{{.State.Running}}')" = true ] || break
  sleep 1
done
if [ "$healthy" != yes ]; then
  podman logs "$container" >&2 || true
  fail "the image's HEALTHCHECK did not pass within 2 minutes (serve's log above)"
fi
echo "  ok  the HEALTHCHECK passes: /healthz answers"

# expect LABEL PATTERN CMD...: CMD (run in the container) must exit 0 and print PATTERN (ERE).
expect() {
  local label=$1 pattern=$2 status=0
  shift 2
  podman exec "$container" "$@" >"$tmp/out" 2>&1 || status=$?
  if [ "$status" != 0 ] || ! grep -qE -- "$pattern" "$tmp/out"; then
    cat "$tmp/out" >&2
    fail "$label: exit status $status, output above (wanted /$pattern/)"
  fi
  echo "  ok  $label"
}
expect "serve answers /readyz" '"status":"ready"' \
  node -e 'fetch("http://127.0.0.1:3000/readyz").then(async (r) => { console.log(await r.text()); process.exit(r.ok ? 0 : 1) })'
expect "runs as $user, not root" "^uid=[1-9][0-9]*\\($user\\)" id
expect "Node.js 24" '^v2[4-9]\.' node --version
expect "the npm package's command" '^nightshift [0-9]' nightshift --version
expect "bubblewrap" '^bubblewrap 0\.([89]|[1-9][0-9])' bwrap --version
# Evidence scripts cannot run in the container: its user can make no cgroup to bound them, and
# under the engine's masked /proc paths the kernel refuses bubblewrap's new /proc in a user and pid
# namespace ("Can't mount proc on /newroot/proc: Operation not permitted", seen here). The bot
# must say so at start rather than fail each script later (README, "Container image and compose").
# (Read from a file: grep -q stopping early would fail podman logs with SIGPIPE, and pipefail the test.)
podman logs "$container" >"$tmp/serve.log" 2>&1
if ! grep -q 'evidence scripts will be refused' "$tmp/serve.log"; then
  cat "$tmp/serve.log" >&2
  fail "serve did not say at start that evidence scripts will be refused in the container (log above)"
fi
echo "  ok  serve says at start that evidence scripts will be refused here, and why"
expect "the ssh client" '^OpenSSH_' ssh -V
expect "zstd" 'Zstandard' zstd --version
expect "analyze (the packaged demo core)" 'SIGABRT' nightshift analyze /opt/nightshift/examples/crash-abort.core.30457.gz
podman exec "$container" nightshift analyze --json --workers 2 "$tmp/demo/demo.core.gz" >"$tmp/got.json" 2>"$tmp/out" || {
  cat "$tmp/out" >&2
  fail "analyze --json in the container failed"
}
if ! grep -v '"generatedAt"' "$tmp/got.json" | diff -u "$tmp/want.json" - >&2; then
  fail "analyze --json in the container differs from the checkout's report (diff above)"
fi
echo "  ok  analyze --json --workers 2 in the container reports what the checkout does"

step "podman stop (SIGTERM through tini)"
podman stop --time 30 "$container" >/dev/null 2>>"$tmp/run.log" || {
  cat "$tmp/run.log" >&2
  fail "podman stop failed (log above)"
}
status=$(podman inspect "$container" --format '{{.State.ExitCode}}')
if [ "$status" != 0 ]; then
  podman logs "$container" >&2 || true
  fail "serve exited $status on SIGTERM (log above)"
fi
echo "  ok  serve stops on SIGTERM with status 0"

step "done: the image works"
