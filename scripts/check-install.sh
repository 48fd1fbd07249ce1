#!/usr/bin/env bash
# Proves the two installs a user makes without a checkout's dev tools (README, "Install"):
#   1. npm: `npm pack`, then `npm install -g` of the tarball into a temp prefix (the package runs
#      dist/, tsc's build of src/: Node does not strip types under node_modules);
#   2. production: `npm ci --omit=dev` in a fresh copy of the repo (no `node` devDependency, so the
#      Node.js 24 on PATH runs src/ through bin/nightshift).
# Each then runs --help, analyze (compared with the checkout's report), the analysis job's child
# process, migrate, doctor (against a local fake Slack, so manifest.yml is read), collect (a YAML
# hosts file, SSH refused) and serve (/healthz and /readyz, then SIGTERM), and the launcher's
# message on a Node.js older than 24.
# Needs the checkout's `npm ci` (its Node.js 24 and tsc) and the npm registry (or npm's cache).
# Set NIGHTSHIFT_NODE to use another Node.js 24. Any failure stops it with "check-install: FAIL".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail() {
  echo "check-install: FAIL: $*" >&2
  exit 1
}
step() { echo "check-install: [$SECONDS s] $*"; }

node24=${NIGHTSHIFT_NODE:-$root/node_modules/.bin/node}
[ -x "$node24" ] || fail "no Node.js at $node24: run npm ci first, or set NIGHTSHIFT_NODE"
[ "$("$node24" -p 'process.versions.node.split(".")[0]')" -ge 24 ] || fail "$node24 is not Node.js 24 or newer"
git rev-parse --git-dir >/dev/null 2>&1 || fail "$root is not a git work tree: the fresh copy is what git ls-files lists"
# The Node.js on PATH before ours goes first: an older one shows the launcher's message for real.
other_node=$(command -v node || true)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nightshift-install.XXXXXX")
serve_pid=
fake_pid=
cleanup() {
  if [ -n "$serve_pid" ]; then kill -KILL "$serve_pid" 2>/dev/null || true; fi
  if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Only Node.js 24 itself on PATH: not the checkout's node_modules/.bin (tsc, the yaml CLI...).
mkdir "$tmp/node24"
ln -s "$(readlink -f "$node24")" "$tmp/node24/node"
export PATH="$tmp/node24:$PATH"
unset NODE_PATH NODE_OPTIONS
# The embedded store in a temp directory and no real Slack, Anthropic or hosts, whatever the caller
# has set (CI sets DATABASE_URL for the tests).
for variable in $(compgen -e | grep -E '^(DATABASE_|NIGHTSHIFT_|SLACK_|ANTHROPIC_|AGENT_)' || true); do
  unset "$variable"
done
unset PORT ALERT_WEBHOOK_TOKEN INCIDENT_CHANNEL
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

# A free loopback port (closed again; the race with other processes is harmless here).
free_port() { node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# Fails when output shows a module Node could not load: the failures this check exists for.
no_load_errors() {
  if grep -qE 'ERR_MODULE_NOT_FOUND|Cannot find (package|module)|ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING|ERR_UNKNOWN_FILE_EXTENSION' "$1"; then
    cat "$1" >&2
    fail "$2: a module did not load"
  fi
}

# expect LABEL STATUS PATTERN CMD...: runs CMD, which must exit STATUS and print PATTERN (ERE).
expect() {
  local label=$1 want=$2 pattern=$3 status=0
  shift 3
  "$@" >"$tmp/out" 2>&1 || status=$?
  no_load_errors "$tmp/out" "$label"
  if [ "$status" != "$want" ] || ! grep -qE -- "$pattern" "$tmp/out"; then
    cat "$tmp/out" >&2
    fail "$label: exit status $status (wanted $want), output above (wanted /$pattern/)"
  fi
  echo "  ok  $label"
}

# A fake Slack Web API for doctor: the bot token grants every scope manifest.yml asks for, and the
# bot is in #incidents.
scopes=$(awk '/^    bot:/ { on = 1; next } on && /^      - / { print $2; next } on { exit }' manifest.yml | paste -sd, -)
[ -n "$scopes" ] || fail "no bot scopes found in manifest.yml"
slack_port=$(free_port)
SCOPES=$scopes node -e '
  require("node:http").createServer((req, res) => {
    const method = req.url.replace(/^\/api\//, "");
    const answers = {
      "auth.test": { ok: true, user: "nightshift", user_id: "U0BOT", team: "Install check" },
      "conversations.list": { ok: true, channels: [{ id: "C0INCIDENT", name: "incidents", is_member: true }] },
    };
    res.writeHead(200, { "content-type": "application/json", "x-oauth-scopes": process.env.SCOPES });
    res.end(JSON.stringify(answers[method] ?? { ok: false, error: "unknown_method" }));
  }).listen(Number(process.argv[1]), "127.0.0.1");
' "$slack_port" &
fake_pid=$!

# The demo core, at one path for every analysis, and the checkout's report of it to compare with.
cp -p examples/crash-abort.core.30457.gz "$tmp/demo.core.gz"
"$root/bin/nightshift" analyze --json --workers 2 "$tmp/demo.core.gz" | grep -v '"generatedAt"' >"$tmp/want.json"

# check_commands LABEL NIGHTSHIFT CODE_DIR: the commands, run from an empty directory.
check_commands() {
  local label=$1 ns=$2 code=$3 data="$tmp/data-$1" port status
  mkdir -p "$tmp/cwd-$label" "$data"
  cd "$tmp/cwd-$label"

  expect "$label: --help" 0 '^Usage: nightshift' "$ns" --help
  expect "$label: analyze (text)" 0 'SIGABRT' "$ns" analyze "$tmp/demo.core.gz"
  "$ns" analyze --json --workers 2 "$tmp/demo.core.gz" >"$tmp/got.json" 2>"$tmp/out" || {
    cat "$tmp/out" >&2
    fail "$label: analyze --json failed"
  }
  if ! grep -v '"generatedAt"' "$tmp/got.json" | diff -u "$tmp/want.json" - >&2; then
    fail "$label: analyze --json differs from the checkout's report (diff above)"
  fi
  echo "  ok  $label: analyze --json --workers 2 reports what the checkout does"
  # The WebAssembly scanner loads (a missing strings.wasm only falls back to the slower loop).
  expect "$label: strings.wasm loads" 0 '^wasm$' node --input-type=module -e "
    const { wasmScanner } = await import('$code/analyze/wasm/strings-wasm.' + ('$code'.endsWith('/src') ? 'ts' : 'js'));
    console.log(wasmScanner() ? 'wasm' : 'no wasm');"
  # The bot's analysis job runs the analyzer in a child process started from a file beside it
  # (analyze-child-main.js in dist/, .ts in src/): it starts and analyses the demo core.
  expect "$label: the analysis job's child process" 0 '^dumps 1$' node --input-type=module -e "
    const { analyzeInChild } = await import('$code/evidence/analyze-child.' + ('$code'.endsWith('/src') ? 'ts' : 'js'));
    const { report } = await analyzeInChild(['$tmp/demo.core.gz'], { workers: 1 });
    console.log('dumps', report.dumps.length);"

  export NIGHTSHIFT_DATA_DIR=$data
  expect "$label: migrate" 0 '^applied migrations 1, 2' "$ns" migrate
  expect "$label: doctor, no Slack" 0 'off: SLACK_BOT_TOKEN is not set' "$ns" doctor
  expect "$label: doctor, fake Slack" 0 'every scope manifest.yml asks for' \
    env SLACK_BOT_TOKEN=xoxb-install-check SLACK_SIGNING_SECRET=0123456789abcdef0123456789abcdef \
    SLACK_API_URL="http://127.0.0.1:$slack_port/api/" "$ns" doctor

  expect "$label: collect --help" 0 '^Usage: nightshift collect' "$ns" collect --help
  : >"$tmp/known_hosts"
  printf 'knownHosts: %s\nhosts:\n  - name: web\n    address: 127.0.0.1\n    port: 1\n    user: nobody\n' \
    "$tmp/known_hosts" >"$tmp/hosts.yml"
  expect "$label: collect (YAML hosts file, SSH refused)" 1 'cannot connect to web' \
    env NIGHTSHIFT_HOSTS="$tmp/hosts.yml" "$ns" collect web

  port=$(free_port)
  PORT=$port "$ns" serve >"$tmp/serve-$label.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 1 120); do
    if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
      "http://127.0.0.1:$port/healthz"; then
      break
    fi
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.25
  done
  expect "$label: serve answers /readyz" 0 '"status":"ready"' \
    node -e 'fetch(process.argv[1]).then(async (r) => { console.log(await r.text()); process.exit(r.ok ? 0 : 1) })' \
    "http://127.0.0.1:$port/readyz"
  kill -TERM "$serve_pid"
  status=0
  wait "$serve_pid" || status=$?
  serve_pid=
  no_load_errors "$tmp/serve-$label.log" "$label: serve"
  if [ "$status" != 0 ]; then
    cat "$tmp/serve-$label.log" >&2
    fail "$label: serve exited $status on SIGTERM"
  fi
  echo "  ok  $label: serve stops on SIGTERM with status 0"
  unset NIGHTSHIFT_DATA_DIR
  cd "$root"
}

# check_old_node LAUNCHER: on a Node.js older than 24 the launcher says so and exits 2. A real one
# when PATH had one, else Node.js 24 told it is 20.
check_old_node() {
  local launcher=$1
  if [ -n "$other_node" ] && [ "$("$other_node" -p 'process.versions.node.split(".")[0]')" -lt 24 ]; then
    expect "old Node.js ($("$other_node" --version)): clear message" 2 'needs Node.js 24 or newer' \
      "$other_node" "$launcher" --help
  else
    expect "old Node.js (simulated 20.0.0): clear message" 2 'needs Node.js 24 or newer; this is v20.0.0' \
      node --import 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.0.0"});Object.defineProperty(process,"version",{value:"v20.0.0"})' \
      "$launcher" --help
  fi
}

step "npm pack (builds dist/)"
tarball=$(npm pack --silent --pack-destination "$tmp" | tail -n 1)
bytes=$(stat -c %s "$tmp/$tarball")
echo "  $tarball: $bytes bytes"
[ "$bytes" -lt 2000000 ] || fail "the tarball is $bytes bytes, over 2 MB"
tar -tzf "$tmp/$tarball" >"$tmp/files"
for unwanted in package/src/ package/test/ package/bench/ package/examples/web-; do
  if grep -q "^$unwanted" "$tmp/files"; then fail "the tarball holds $unwanted..."; fi
done

step "npm install -g of the tarball"
npm install -g --prefix "$tmp/global" "$tmp/$tarball" --loglevel=error >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log" >&2
  fail "npm install -g failed"
}
pkg=$tmp/global/lib/node_modules/nightshift
expect "global: the demo core is in the package" 0 'SIGABRT' "$tmp/global/bin/nightshift" analyze "$pkg/examples/crash-abort.core.30457.gz"
check_commands global "$tmp/global/bin/nightshift" "$pkg/dist"
check_old_node "$pkg/bin/nightshift.js"

step "npm ci --omit=dev in a fresh copy of the repo"
mkdir "$tmp/clone"
# The files git would clone (as they are in the work tree): nothing ignored, so no node_modules or dist.
git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$tmp/clone"
(cd "$tmp/clone" && npm ci --omit=dev --loglevel=error) >"$tmp/ci.log" 2>&1 || {
  cat "$tmp/ci.log" >&2
  fail "npm ci --omit=dev failed"
}
[ ! -e "$tmp/clone/node_modules/.bin/node" ] || fail "npm ci --omit=dev installed the node devDependency"
[ ! -e "$tmp/clone/node_modules/typescript" ] || fail "npm ci --omit=dev installed typescript"
[ ! -e "$tmp/clone/dist" ] || fail "the fresh copy has a dist/"
check_commands production "$tmp/clone/bin/nightshift" "$tmp/clone/src"

step "done: both installs work"
