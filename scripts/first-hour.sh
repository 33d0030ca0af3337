#!/usr/bin/env bash
# first-hour.sh: a newcomer's first hour, on a fresh clone of HEAD, following the
# README: the install command of its "Install the binary" section (read from the
# README's <!-- first-hour: install --> block, so the two cannot drift), the installed
# `ringleader --version` and the commands of its <!-- first-hour: check --> block, the
# runnable examples as the README names them (`cargo run --example NAME` from the
# clone's root), and a bounded demo run: the demo through the installed binary on
# free ports, a request through the proxy, /status naming the demo's backends,
# then SIGTERM and a clean exit. Any failed step stops the script with its name.
#
# Usage: scripts/first-hour.sh
#   CARGO_TARGET_DIR=DIR   reuse build output between runs (CI: keeps the release build
#                          warm; relative to the current directory). Without it the
#                          install builds from scratch in a temp dir: 3-10 min on 2 cores,
#                          since the binary is built with fat LTO.
#   STEP_TIMEOUT=1800      seconds any one step may take
#
# Loopback only; every process it starts is stopped by its pid; the clone, the
# install root and the logs live in one temp dir, removed at the end.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
# The steps run inside the clone: a relative target dir would land in (and go with) it.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  case "$CARGO_TARGET_DIR" in
    /*) ;;
    *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;;
  esac
  export CARGO_TARGET_DIR
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/first-hour.XXXXXX")
DEMO_PID=
started=$(date +%s)

cleanup() {
  if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
    kill "$DEMO_PID" 2>/dev/null || true
    wait "$DEMO_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { echo "== first-hour: $*"; }
fail() {
  echo "first-hour: FAILED: $*" >&2
  exit 1
}
# Run a step's command with the time limit; on failure name the step.
run() {
  local name=$1
  shift
  timeout "$STEP_TIMEOUT" "$@" || fail "$name (exit $?): $*"
}

# The lines of a README block between <!-- first-hour: NAME --> and its closing
# marker, without the code fence and without trailing comments.
block() {
  awk -v start="<!-- first-hour: $1 -->" -v stop="<!-- /first-hour: $1 -->" '
    $0 == start { inside = 1; found = 1; next }
    $0 == stop { inside = 0; next }
    inside && !/^```/ { sub(/[ \t]+#.*$/, ""); if (length($0)) print }
    END { if (!found) exit 1 }
  ' README.md || fail "README.md has no <!-- first-hour: $1 --> block"
}

step "clone HEAD of $REPO"
git clone -q "$REPO" "$WORK/ringleader" || fail "git clone"
cd "$WORK/ringleader"
echo "   at $(git log --oneline -1)"

step "install, as the README says"
install=$(block install)
[ "$(printf '%s\n' "$install" | grep -c '^cargo install ')" = 1 ] \
  || fail "the install block should hold one 'cargo install' line, got: $install"
echo "   $install --root <temp>"
# shellcheck disable=SC2086 # the README's line, word-split as a shell would
run "install" $install --root "$WORK/root"
export PATH="$WORK/root/bin:$PATH"
[ "$(command -v ringleader)" = "$WORK/root/bin/ringleader" ] \
  || fail "the install put no ringleader in $WORK/root/bin"

step "the README's check commands, with the installed binary"
checks=$(block check)
[ -n "$checks" ] || fail "the README's check block is empty"
while IFS= read -r line; do
  echo "   \$ $line"
  case "$line" in
    ringleader\ *) ;;
    *) fail "unexpected line in the check block: $line" ;;
  esac
  timeout "$STEP_TIMEOUT" bash -c "$line" > "$WORK/out.txt" 2>&1 \
    || { cat "$WORK/out.txt" >&2; fail "$line"; }
  sed 's/^/     /' "$WORK/out.txt" | head -5
done <<< "$checks"
ringleader --version | grep -q '^ringleader [0-9]' || fail "ringleader --version prints no version"

for example in sharding balancer idgen; do
  step "cargo run --example $example (from the clone's root)"
  RINGLEADER_WORKER_ID=7 run "example $example" cargo run -q --example "$example" > "$WORK/example.txt"
  [ -s "$WORK/example.txt" ] || fail "example $example printed nothing"
  head -3 "$WORK/example.txt" | sed 's/^/     /'
done

step "ringleader demo on free ports, a request through it, SIGTERM"
ringleader demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 > "$WORK/demo.out" 2> "$WORK/demo.err" &
DEMO_PID=$!
proxy= admin=
for _ in $(seq 100); do
  proxy=$(awk '$1 == "proxy" { print $2 }' "$WORK/demo.out")
  admin=$(awk '$1 == "admin" { print $2 }' "$WORK/demo.out")
  [ -n "$proxy" ] && [ -n "$admin" ] && break
  kill -0 "$DEMO_PID" 2>/dev/null || { cat "$WORK/demo.err" >&2; fail "the demo exited early"; }
  sleep 0.1
done
[ -n "$proxy" ] || { cat "$WORK/demo.out" "$WORK/demo.err" >&2; fail "the demo printed no proxy address within 10 s"; }
echo "   proxy $proxy  admin $admin"
headers=$(curl -sS --max-time 5 -D - -o "$WORK/body.txt" "$proxy") || fail "curl $proxy"
printf '%s\n' "$headers" | head -1 | grep -q ' 200' || fail "the demo proxy answered: $(printf '%s\n' "$headers" | head -1)"
backend=$(printf '%s\n' "$headers" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-backend" { print $2 }')
echo "   200 from $backend: $(cat "$WORK/body.txt")"
case "$backend" in alpha | bravo | charlie) ;; *) fail "x-backend is '$backend', not one of alpha, bravo, charlie" ;; esac
status=$(curl -sS --max-time 5 "$admin") || fail "curl $admin"
for name in alpha bravo charlie; do
  printf '%s' "$status" | grep -q "\"$name\"" || fail "/status does not name backend $name: $status"
done
kill -TERM "$DEMO_PID"
for _ in $(seq 100); do kill -0 "$DEMO_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$DEMO_PID" 2>/dev/null; then fail "the demo did not exit within 10 s of SIGTERM"; fi
code=0
wait "$DEMO_PID" || code=$?
DEMO_PID=
[ "$code" = 0 ] || { cat "$WORK/demo.err" >&2; fail "the demo exited with status $code after SIGTERM"; }

echo "first-hour: OK in $(( $(date +%s) - started )) s"
