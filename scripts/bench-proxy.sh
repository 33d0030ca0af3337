#!/usr/bin/env bash
# bench-proxy.sh: ringleader vs nginx vs HAProxy as reverse proxies on loopback,
# one worker each, in front of the same three nginx backends, measured with wrk
# in alternating rounds; then a failover run that kills a backend mid-run and
# counts non-2xx responses and socket errors per proxy.
#
# Installs nothing. Needs nginx and wrk (HAProxy is skipped when missing):
#   Debian/Ubuntu:  sudo apt-get install -y nginx haproxy wrk
#   Fedora/RHEL:    sudo dnf install -y nginx haproxy wrk
#   Arch:           sudo pacman -S nginx haproxy wrk
#   macOS:          brew install nginx haproxy wrk
#
# Usage: scripts/bench-proxy.sh            (defaults below)
#   ROUNDS=3 DURATION=10 CONNECTIONS=64 THREADS=2 BASE_PORT=18000 scripts/bench-proxy.sh
#   RINGLEADER=path/to/ringleader            use this binary instead of building one
#   RINGLEADER_BEFORE=path/to/old/ringleader also run an older build, started the same
#                                            way, in the same alternating rounds (A/B)
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPT=bench-proxy
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BASE_PORT=${BASE_PORT:-18000}
FAILOVER_DURATION=${FAILOVER_DURATION:-10}

missing=()
for tool in nginx wrk; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench-proxy: missing ${missing[*]}; install from your distribution's packages, e.g." >&2
  echo "  Debian/Ubuntu: sudo apt-get install -y nginx haproxy wrk" >&2
  echo "  Fedora/RHEL:   sudo dnf install -y nginx haproxy wrk" >&2
  echo "  macOS:         brew install nginx haproxy wrk" >&2
  exit 1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; } || true)
if [ -z "$HAPROXY" ]; then
  echo "bench-proxy: haproxy not found; skipping it (Debian/Ubuntu: sudo apt-get install -y haproxy)" >&2
fi

if [ -z "${RINGLEADER:-}" ]; then
  echo "== building ringleader (release)"
  cargo build --release -q -p ringleader-cli --bin ringleader
  RINGLEADER=${CARGO_TARGET_DIR:-target}/release/ringleader
fi
RINGLEADER_BEFORE=${RINGLEADER_BEFORE:-}

B1=$((BASE_PORT + 1)); B2=$((BASE_PORT + 2)); B3=$((BASE_PORT + 3))
P_NGINX=$((BASE_PORT + 80)); P_HAPROXY=$((BASE_PORT + 81)); P_RL=$((BASE_PORT + 82)); P_ADMIN=$((BASE_PORT + 92))
P_RL_BEFORE=$((BASE_PORT + 83)); P_ADMIN_BEFORE=$((BASE_PORT + 93))
for port in $B1 $B2 $B3 $P_NGINX $P_HAPROXY $P_RL $P_ADMIN $P_RL_BEFORE $P_ADMIN_BEFORE; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "bench-proxy: port $port is in use; set BASE_PORT to a free range" >&2
    exit 1
  fi
done

WORK=$(mktemp -d -t ringleader-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT


start_backend() { # $1 = name, $2 = port
  { nginx_common "$1"; cat <<EOF
  server {
    listen 127.0.0.1:$2 reuseport;
    location /healthz { return 200 "ok\n"; }
    location / { default_type text/plain; return 200 "hello from $1\n"; }
  }
}
EOF
  } > "$WORK/$1.conf"
  "$NGINX" -p "$WORK" -c "$WORK/$1.conf" -e "$WORK/$1.error.log"
}

start_backend b1 "$B1"; start_backend b2 "$B2"; start_backend b3 "$B3"

{ nginx_common nginx-proxy; cat <<EOF
  upstream app {
    server 127.0.0.1:$B1 max_fails=1 fail_timeout=5s;
    server 127.0.0.1:$B2 max_fails=1 fail_timeout=5s;
    server 127.0.0.1:$B3 max_fails=1 fail_timeout=5s;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 1s;
    }
  }
}
EOF
} > "$WORK/nginx-proxy.conf"
"$NGINX" -p "$WORK" -c "$WORK/nginx-proxy.conf" -e "$WORK/nginx-proxy.error.log"

if [ -n "$HAPROXY" ]; then
  cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
  pidfile $WORK/haproxy.pid
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  option forwardfor
  option redispatch
  retries 2
  retry-on conn-failure empty-response response-timeout 502 503
  http-reuse always
frontend fe
  bind 127.0.0.1:$P_HAPROXY
  default_backend app
backend app
  balance roundrobin
  option httpchk GET /healthz
  server b1 127.0.0.1:$B1 check inter 1s fall 2 rise 2
  server b2 127.0.0.1:$B2 check inter 1s fall 2 rise 2
  server b3 127.0.0.1:$B3 check inter 1s fall 2 rise 2
EOF
  "$HAPROXY" -D -f "$WORK/haproxy.cfg"
fi

ringleader_toml() { # $1 = listen port, $2 = admin port
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
admin = "127.0.0.1:$2"
workers = 1
[upstream.app]
strategy = "round_robin"
backends = [{ addr = "127.0.0.1:$B1" }, { addr = "127.0.0.1:$B2" }, { addr = "127.0.0.1:$B3" }]
[upstream.app.health]
path = "/healthz"
interval = "1s"
rise = 2
fall = 2
[upstream.app.passive]
ejection_time = "5s"
[upstream.app.retry]
on = ["connect_error", "timeout", "5xx"]
EOF
}
ringleader_toml "$P_RL" "$P_ADMIN" > "$WORK/ringleader.toml"
ringleader_toml "$P_RL_BEFORE" "$P_ADMIN_BEFORE" > "$WORK/ringleader-before.toml"
# nginx and HAProxy daemonize, which gives each a session of its own, and with
# the kernel's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled)
# each session is a CPU group with an equal share. ringleader stays in the
# foreground, so it gets a session of its own too (setsid): in this script's
# session it would share one group's share of the CPU with wrk.
SETSID=$(command -v setsid || true)
RUST_LOG=warn $SETSID "$RINGLEADER" serve -c "$WORK/ringleader.toml" 2> "$WORK/ringleader.log" &
PIDS+=($!)
if [ -n "$RINGLEADER_BEFORE" ]; then
  RUST_LOG=warn $SETSID "$RINGLEADER_BEFORE" serve -c "$WORK/ringleader-before.toml" 2> "$WORK/ringleader-before.log" &
  PIDS+=($!)
fi

for port in $B1 $B2 $B3 $P_NGINX $P_RL; do wait_port "$port"; done
[ -n "$HAPROXY" ] && wait_port "$P_HAPROXY"
[ -n "$RINGLEADER_BEFORE" ] && wait_port "$P_RL_BEFORE"
sleep 1.5 # let the health checkers see the backends up

PROXIES=("nginx:$P_NGINX" "ringleader:$P_RL")
[ -n "$HAPROXY" ] && PROXIES=("nginx:$P_NGINX" "haproxy:$P_HAPROXY" "ringleader:$P_RL")
[ -n "$RINGLEADER_BEFORE" ] && PROXIES+=("rl-before:$P_RL_BEFORE")

# to_ms VALUE (wrk prints 812.00us, 1.23ms, 1.01s)
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

declare -A RPS P50 P99
echo "== throughput: $ROUNDS alternating rounds x ${DURATION}s, wrk -t$THREADS -c$CONNECTIONS, one worker per proxy"
for round in $(seq "$ROUNDS"); do
  # Alternate the order each round so no proxy always runs first/last.
  order=("${PROXIES[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=(); for ((i=${#PROXIES[@]}-1; i>=0; i--)); do order+=("${PROXIES[$i]}"); done
  fi
  for entry in "${order[@]}"; do
    name=${entry%%:*}; port=${entry##*:}
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
    p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
    p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
    non2xx=$(echo "$out" | awk '/Non-2xx/ { print $NF }')
    printf '  round %d %-11s %10s req/s  p50 %8s ms  p99 %8s ms  non-2xx %s\n' "$round" "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
    RPS[$name]="${RPS[$name]:-} $rps"; P50[$name]="${P50[$name]:-} $p50"; P99[$name]="${P99[$name]:-} $p99"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
nginx_rps=$(echo "${RPS[nginx]}" | median)
echo
echo "| proxy (1 worker) | req/s (median of $ROUNDS) | p50 ms | p99 ms | req/s vs nginx |"
echo "|---|---:|---:|---:|---:|"
for entry in "${PROXIES[@]}"; do
  name=${entry%%:*}
  r=$(echo "${RPS[$name]}" | median); p5=$(echo "${P50[$name]}" | median); p9=$(echo "${P99[$name]}" | median)
  ratio=$(awk -v a="$r" -v b="$nginx_rps" 'BEGIN { printf "%.2f", a / b }')
  printf '| %s | %.0f | %s | %s | %s |\n' "$name" "$r" "$p5" "$p9" "$ratio"
done
if [ -n "$RINGLEADER_BEFORE" ]; then
  new=$(echo "${RPS[ringleader]}" | median); old=$(echo "${RPS[rl-before]}" | median)
  per_round=$(paste -d/ <(echo "${RPS[ringleader]}" | tr ' ' '\n' | grep -v '^$') \
    <(echo "${RPS[rl-before]}" | tr ' ' '\n' | grep -v '^$') | awk -F/ '{ printf "%.3f ", $1 / $2 }')
  echo
  echo "ringleader / rl-before req/s: $(awk -v a="$new" -v b="$old" 'BEGIN { printf "%.3f", a / b }') (per round: $per_round)"
fi

echo
echo "== failover: ${FAILOVER_DURATION}s wrk per proxy; backend b2 is stopped after 2s and restarted after $((FAILOVER_DURATION / 2))s"
echo "| proxy | requests | non-2xx | socket errors |"
echo "|---|---:|---:|---:|"
for entry in "${PROXIES[@]}"; do
  name=${entry%%:*}; port=${entry##*:}
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${FAILOVER_DURATION}s" "http://127.0.0.1:$port/" > "$WORK/failover-$name.txt" &
  wrk_pid=$!
  sleep 2
  kill -TERM "$(cat "$WORK/b2.pid")" # fast shutdown: open connections are closed
  sleep $((FAILOVER_DURATION / 2 - 2))
  start_backend b2 "$B2"
  wait "$wrk_pid"
  out=$(cat "$WORK/failover-$name.txt")
  total=$(echo "$out" | awk '/requests in/ { print $1 }')
  non2xx=$(echo "$out" | awk '/Non-2xx/ { print $NF }')
  errors=$(echo "$out" | awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }')
  printf '| %s | %s | %s | %s |\n' "$name" "$total" "${non2xx:-0}" "${errors:-0}"
  sleep 3 # let every proxy see b2 healthy again
done
echo
echo "(machine: $(nproc) cores; $(uname -sr); nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'))"
