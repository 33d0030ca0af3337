#!/usr/bin/env bash
# bench-proxy.sh: ringleader vs nginx vs HAProxy as reverse proxies on loopback,
# one worker each, in front of the same three nginx backends, measured in
# alternating rounds; then (mode http) a failover run that kills a backend
# mid-run and counts non-2xx responses and socket errors per proxy.
#
# Modes (MODE=..., several separated by spaces or commas; default http):
#   http       plaintext HTTP/1.1 keep-alive, wrk: requests/s, p50, p99 (+ failover run)
#   https      HTTPS keep-alive (TLS 1.3, HTTP/1.1), wrk: requests/s, p50, p99
#   handshake  a new TLS connection per request (wrk -H 'Connection: close'):
#              connections/s. wrk keeps the session of a connection's last ticket
#              for the next one (SSL_clear), so with the servers' defaults these are
#              resumed TLS 1.3 handshakes (PSK with X25519, no certificate signature),
#              as a returning client makes; h2load --h1 resumes the same way, and its
#              -D never ends when the server closes every connection (nghttp2 1.52)
#   h2         HTTP/2 over TLS (ALPN h2), h2load: requests/s, p50, p99
#   tls        https handshake h2;  all: http https handshake h2
# Every TLS mode uses one certificate made at run time with openssl (ECDSA P-256,
# self-signed for localhost/127.0.0.1) for every proxy, TLS 1.3 only on nginx and
# HAProxy (ringleader offers 1.2 and 1.3; the clients pick 1.3; the script prints
# what each proxy negotiated).
#
# Installs nothing. Needs nginx and wrk (HAProxy is skipped when missing), openssl
# for the TLS modes and h2load for h2:
#   Debian/Ubuntu:  sudo apt-get install -y nginx haproxy wrk openssl nghttp2-client
#   Fedora/RHEL:    sudo dnf install -y nginx haproxy wrk openssl nghttp2
#   Arch:           sudo pacman -S nginx haproxy wrk openssl nghttp2
#   macOS:          brew install nginx haproxy wrk openssl nghttp2
#
# Usage: scripts/bench-proxy.sh            (defaults below)
#   MODE=all ROUNDS=3 DURATION=10 CONNECTIONS=64 THREADS=2 BASE_PORT=18000 scripts/bench-proxy.sh
#   H2_CONNECTIONS=8 H2_STREAMS=8            h2load -c / -m (8 x 8 = 64 requests in flight, as wrk's -c64)
#   HANDSHAKE_CONNECTIONS=64                 wrk -c in mode handshake
#   FAILOVER=0                               skip the failover run of mode http
#   RINGLEADER=path/to/ringleader            use this binary instead of building one
#   RINGLEADER_BEFORE=path/to/old/ringleader also run an older build in mode http, started
#                                            the same way, in the same alternating rounds (A/B)
#   NO_HAPROXY=1                             leave HAProxy out
#   H2C=0                                    ringleader's plain listener without h2c
#                                            ([server.http2] cleartext = false)
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
FAILOVER=${FAILOVER:-1}
H2_CONNECTIONS=${H2_CONNECTIONS:-8}
H2_STREAMS=${H2_STREAMS:-8}
HANDSHAKE_CONNECTIONS=${HANDSHAKE_CONNECTIONS:-$CONNECTIONS}

MODES=()
for m in $(echo "${MODE:-http}" | tr ',' ' '); do
  case "$m" in
    http | https | handshake | h2) MODES+=("$m") ;;
    tls) MODES+=(https handshake h2) ;;
    all) MODES+=(http https handshake h2) ;;
    *) echo "bench-proxy: unknown mode '$m' (http, https, handshake, h2, tls, all)" >&2; exit 2 ;;
  esac
done
has_mode() { local m; for m in "${MODES[@]}"; do [ "$m" = "$1" ] && return 0; done; return 1; }
NEED_TLS=0
for m in "${MODES[@]}"; do [ "$m" != http ] && NEED_TLS=1; done

missing=()
for tool in nginx wrk; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
[ "$NEED_TLS" = 1 ] && { command -v openssl >/dev/null 2>&1 || missing+=(openssl); }
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench-proxy: missing ${missing[*]}; install from your distribution's packages, e.g." >&2
  echo "  Debian/Ubuntu: sudo apt-get install -y nginx haproxy wrk openssl nghttp2-client" >&2
  echo "  Fedora/RHEL:   sudo dnf install -y nginx haproxy wrk openssl nghttp2" >&2
  echo "  macOS:         brew install nginx haproxy wrk openssl nghttp2" >&2
  exit 1
fi
if has_mode h2 && ! command -v h2load >/dev/null 2>&1; then
  echo "bench-proxy: h2load not found; skipping mode h2 (Debian/Ubuntu: sudo apt-get install -y nghttp2-client)" >&2
  kept=(); for m in "${MODES[@]}"; do [ "$m" != h2 ] && kept+=("$m"); done; MODES=("${kept[@]}")
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=""
if [ -z "${NO_HAPROXY:-}" ]; then
  HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; } || true)
  if [ -z "$HAPROXY" ]; then
    echo "bench-proxy: haproxy not found; skipping it (Debian/Ubuntu: sudo apt-get install -y haproxy)" >&2
  fi
fi

if [ -z "${RINGLEADER:-}" ]; then
  echo "== building ringleader (release)"
  cargo build --release -q -p ringleader-cli --bin ringleader
  RINGLEADER=${CARGO_TARGET_DIR:-target}/release/ringleader
fi
RINGLEADER_BEFORE=${RINGLEADER_BEFORE:-}
has_mode http || RINGLEADER_BEFORE="" # the old build only takes part in the plaintext rounds

B1=$((BASE_PORT + 1)); B2=$((BASE_PORT + 2)); B3=$((BASE_PORT + 3))
P_NGINX=$((BASE_PORT + 80)); P_HAPROXY=$((BASE_PORT + 81)); P_RL=$((BASE_PORT + 82)); P_ADMIN=$((BASE_PORT + 92))
P_RL_BEFORE=$((BASE_PORT + 83)); P_ADMIN_BEFORE=$((BASE_PORT + 93))
P_NGINX_TLS=$((BASE_PORT + 84)); P_HAPROXY_TLS=$((BASE_PORT + 85)); P_RL_TLS=$((BASE_PORT + 86))
for port in $B1 $B2 $B3 $P_NGINX $P_HAPROXY $P_RL $P_ADMIN $P_RL_BEFORE $P_ADMIN_BEFORE \
  $P_NGINX_TLS $P_HAPROXY_TLS $P_RL_TLS; do
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

[ "$NEED_TLS" = 1 ] && make_cert "$WORK"

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

NGINX_LOCATION="location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 1s;
    }"
# nginx's TLS server: the same location; nginx's defaults otherwise (session
# tickets on, no shared session cache, http2_max_concurrent_streams 128).
NGINX_TLS_SERVER=""
if [ "$NEED_TLS" = 1 ]; then
  NGINX_TLS_SERVER="server {
    listen 127.0.0.1:$P_NGINX_TLS ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.3;
    $NGINX_LOCATION
  }"
fi
{ nginx_common nginx-proxy; cat <<EOF
  upstream app {
    server 127.0.0.1:$B1 max_fails=1 fail_timeout=5s;
    server 127.0.0.1:$B2 max_fails=1 fail_timeout=5s;
    server 127.0.0.1:$B3 max_fails=1 fail_timeout=5s;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$P_NGINX;
    $NGINX_LOCATION
  }
  $NGINX_TLS_SERVER
}
EOF
} > "$WORK/nginx-proxy.conf"
"$NGINX" -p "$WORK" -c "$WORK/nginx-proxy.conf" -e "$WORK/nginx-proxy.error.log"

if [ -n "$HAPROXY" ]; then
  HAPROXY_TLS_FRONTEND=""
  if [ "$NEED_TLS" = 1 ]; then
    HAPROXY_TLS_FRONTEND="frontend fe_tls
  bind 127.0.0.1:$P_HAPROXY_TLS ssl crt $WORK/cert+key.pem alpn h2,http/1.1 ssl-min-ver TLSv1.3
  default_backend app"
  fi
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
$HAPROXY_TLS_FRONTEND
backend app
  balance roundrobin
  option httpchk GET /healthz
  server b1 127.0.0.1:$B1 check inter 1s fall 2 rise 2
  server b2 127.0.0.1:$B2 check inter 1s fall 2 rise 2
  server b3 127.0.0.1:$B3 check inter 1s fall 2 rise 2
EOF
  "$HAPROXY" -D -f "$WORK/haproxy.cfg"
fi

ringleader_toml() { # $1 = listen port, $2 = admin port, $3 = TLS port (optional)
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
admin = "127.0.0.1:$2"
workers = 1
EOF
  [ -n "${3:-}" ] && echo "tls_listen = \"127.0.0.1:$3\""
  # H2C=0: the plain listener serves HTTP/1.1 alone (no read of the first bytes
  # for the HTTP/2 preface); not for the old build, which lacks the key.
  [ "${H2C:-1}" = 0 ] && [ "$2" = "$P_ADMIN" ] && printf '[server.http2]\ncleartext = false\n'
  if [ -n "${3:-}" ]; then
    cat <<EOF
[[server.tls]]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
EOF
  fi
  cat <<EOF
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
RL_TLS_PORT=""; [ "$NEED_TLS" = 1 ] && RL_TLS_PORT=$P_RL_TLS
ringleader_toml "$P_RL" "$P_ADMIN" "$RL_TLS_PORT" > "$WORK/ringleader.toml"
ringleader_toml "$P_RL_BEFORE" "$P_ADMIN_BEFORE" > "$WORK/ringleader-before.toml"
# nginx and HAProxy daemonize, which gives each a session of its own, and with
# the kernel's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled)
# each session is a CPU group with an equal share. ringleader stays in the
# foreground, so it gets a session of its own too (setsid): in this script's
# session it would share one group's share of the CPU with wrk.
SETSID=$(command -v setsid || true)
RUST_LOG=warn $SETSID "$RINGLEADER" serve -c "$WORK/ringleader.toml" 2> "$WORK/ringleader.log" &
RL_PID=$!
PIDS+=("$RL_PID")
RL_BEFORE_PID=""
if [ -n "$RINGLEADER_BEFORE" ]; then
  RUST_LOG=warn $SETSID "$RINGLEADER_BEFORE" serve -c "$WORK/ringleader-before.toml" 2> "$WORK/ringleader-before.log" &
  RL_BEFORE_PID=$!
  PIDS+=("$RL_BEFORE_PID")
fi

for port in $B1 $B2 $B3 $P_NGINX $P_RL; do wait_port "$port"; done
[ -n "$HAPROXY" ] && wait_port "$P_HAPROXY"
[ -n "$RINGLEADER_BEFORE" ] && wait_port "$P_RL_BEFORE"
if [ "$NEED_TLS" = 1 ]; then
  wait_port "$P_NGINX_TLS"; wait_port "$P_RL_TLS"
  [ -n "$HAPROXY" ] && wait_port "$P_HAPROXY_TLS"
fi
sleep 1.5 # let the health checkers see the backends up

# The process that serves: nginx's one worker (the master's child), HAProxy's one
# process, ringleader itself. Its CPU time is read before and after every run.
NGINX_WORKER=$(awk '{ print $1 }' "/proc/$(cat "$WORK/nginx-proxy.pid")/task/$(cat "$WORK/nginx-proxy.pid")/children")
HAPROXY_PID=""; [ -n "$HAPROXY" ] && HAPROXY_PID=$(cat "$WORK/haproxy.pid")
declare -A SERVER_PID=([nginx]=$NGINX_WORKER [ringleader]=$RL_PID)
[ -n "$HAPROXY" ] && SERVER_PID[haproxy]=$HAPROXY_PID
[ -n "$RL_BEFORE_PID" ] && SERVER_PID[rl-before]=$RL_BEFORE_PID
TICK_US=$((1000000 / $(getconf CLK_TCK)))

proxies_for() { # $1 = mode: "name:port" entries
  if [ "$1" = http ]; then
    echo "nginx:$P_NGINX"; [ -n "$HAPROXY" ] && echo "haproxy:$P_HAPROXY"
    echo "ringleader:$P_RL"; [ -n "$RINGLEADER_BEFORE" ] && echo "rl-before:$P_RL_BEFORE"
  else
    echo "nginx:$P_NGINX_TLS"; [ -n "$HAPROXY" ] && echo "haproxy:$P_HAPROXY_TLS"
    echo "ringleader:$P_RL_TLS"
  fi
  return 0
}

if [ "$NEED_TLS" = 1 ]; then
  echo "== TLS as negotiated (openssl s_client, ALPN h2,http/1.1 offered)"
  for entry in $(proxies_for https); do
    name=${entry%%:*}; port=${entry##*:}
    neg=$(openssl s_client -connect "127.0.0.1:$port" -alpn h2,http/1.1 </dev/null 2>&1 \
      | grep -aE '^(New, |Server Temp Key|ALPN protocol|Peer signature type)' \
      | sed 's/^New, //; s/Cipher is //; s/^[A-Z][a-zA-Z ]*: //' | sort | paste -sd ';' | sed 's/;/; /g' || true)
    printf '  %-11s %s\n' "$name" "$neg"
  done
fi

# to_ms VALUE (wrk prints 812.00us, 1.23ms, 1.01s)
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# One measured run: prints "requests/s p50-ms p99-ms errors requests".
measure() { # $1 = mode, $2 = port
  local out rps p50 p99 errs total
  case "$1" in
    http | https | handshake)
      local scheme=https conns=$CONNECTIONS extra=()
      [ "$1" = http ] && scheme=http
      if [ "$1" = handshake ]; then conns=$HANDSHAKE_CONNECTIONS; extra=(-H 'Connection: close'); fi
      out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --latency \
        "${extra[@]}" "$scheme://127.0.0.1:$2/")
      rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
      p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
      p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
      total=$(echo "$out" | awk '/requests in/ { print $1 }')
      errs=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }')
      ;;
    h2)
      # h2load has no percentiles; its per-request log (status, microseconds) gives them.
      rm -f "$WORK/h2load.log"
      out=$(timeout $((DURATION + 30)) h2load -t"$THREADS" -c"$H2_CONNECTIONS" -m"$H2_STREAMS" \
        -D "$DURATION" --warm-up-time=1 --log-file="$WORK/h2load.log" "https://127.0.0.1:$2/")
      rps=$(echo "$out" | awk '/^finished in/ { gsub(",", ""); print $4 }')
      total=$(echo "$out" | awk '/^requests:/ { print $6 }')
      errs=$(echo "$out" | awk '/^requests:/ { n = $10 + $12 + $14 } /^status codes:/ { n += $5 + $7 + $9 } END { print n + 0 }')
      read -r p50 p99 < <(awk -F'\t' '{ print $3 }' "$WORK/h2load.log" | sort -n \
        | awk '{ a[NR] = $1 } END { if (NR == 0) { print "0 0"; exit }
                 printf "%.3f %.3f\n", a[int(NR * 0.50) + (NR * 0.50 > int(NR * 0.50))] / 1000,
                                       a[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))] / 1000 }')
      ;;
  esac
  echo "${rps:-0} ${p50:-0} ${p99:-0} ${errs:-0} ${total:-0}"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A RPS P50 P99 ERRS CPU
SUMMARY=""
for mode in "${MODES[@]}"; do
  mapfile -t PROXIES < <(proxies_for "$mode")
  case "$mode" in
    http) what="plaintext HTTP/1.1 keep-alive, wrk -t$THREADS -c$CONNECTIONS"; unit="req/s" ;;
    https) what="HTTPS keep-alive (TLS 1.3, HTTP/1.1), wrk -t$THREADS -c$CONNECTIONS"; unit="req/s" ;;
    handshake) what="a new TLS connection per request, wrk -t$THREADS -c$HANDSHAKE_CONNECTIONS -H 'Connection: close'"; unit="conn/s" ;;
    h2) what="HTTP/2 over TLS, h2load -t$THREADS -c$H2_CONNECTIONS -m$H2_STREAMS"; unit="req/s" ;;
  esac
  echo "== $mode: $what; $ROUNDS alternating rounds x ${DURATION}s, one worker per proxy"
  for round in $(seq "$ROUNDS"); do
    # Alternate the order each round so no proxy always runs first/last.
    order=("${PROXIES[@]}")
    if [ $((round % 2)) -eq 0 ]; then
      order=(); for ((i=${#PROXIES[@]}-1; i>=0; i--)); do order+=("${PROXIES[$i]}"); done
    fi
    for entry in "${order[@]}"; do
      name=${entry%%:*}; port=${entry##*:}
      pid=${SERVER_PID[$name]}
      before=$(cpu_ticks "$pid")
      read -r rps p50 p99 errs total < <(measure "$mode" "$port")
      after=$(cpu_ticks "$pid")
      cpu=$(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$total" 'BEGIN { printf "%.1f", (n > 0 ? t * us / n : 0) }')
      printf '  round %d %-11s %10s %s  p50 %8s ms  p99 %8s ms  errors %s  proxy CPU %s us/req\n' \
        "$round" "$name" "$rps" "$unit" "$p50" "$p99" "$errs" "$cpu"
      k="$mode/$name"
      RPS[$k]="${RPS[$k]:-} $rps"; P50[$k]="${P50[$k]:-} $p50"; P99[$k]="${P99[$k]:-} $p99"
      ERRS[$k]=$(( ${ERRS[$k]:-0} + errs )); CPU[$k]="${CPU[$k]:-} $cpu"
    done
  done

  nginx_rps=$(echo "${RPS[$mode/nginx]}" | median)
  table="
$mode: $what, ${DURATION}s x $ROUNDS rounds
| proxy (1 worker) | $unit (median of $ROUNDS) | p50 ms | p99 ms | $unit vs nginx | proxy CPU us/req | errors |
|---|---:|---:|---:|---:|---:|---:|"
  for entry in "${PROXIES[@]}"; do
    name=${entry%%:*}; k="$mode/$name"
    r=$(echo "${RPS[$k]}" | median); p5=$(echo "${P50[$k]}" | median); p9=$(echo "${P99[$k]}" | median)
    c=$(echo "${CPU[$k]}" | median)
    ratio=$(awk -v a="$r" -v b="$nginx_rps" 'BEGIN { printf "%.2f", a / b }')
    table+="
$(printf '| %s | %.0f | %s | %s | %s | %s | %s |' "$name" "$r" "$p5" "$p9" "$ratio" "$c" "${ERRS[$k]}")"
  done
  per_round=$(paste -d/ <(echo "${RPS[$mode/ringleader]}" | tr ' ' '\n' | grep -v '^$') \
    <(echo "${RPS[$mode/nginx]}" | tr ' ' '\n' | grep -v '^$') | awk -F/ '{ printf "%.3f ", $1 / $2 }')
  table+="
ringleader / nginx $unit per round: $per_round(median $(echo "$per_round" | median))"
  if [ "$mode" = http ] && [ -n "$RINGLEADER_BEFORE" ]; then
    new=$(echo "${RPS[http/ringleader]}" | median); old=$(echo "${RPS[http/rl-before]}" | median)
    per_round=$(paste -d/ <(echo "${RPS[http/ringleader]}" | tr ' ' '\n' | grep -v '^$') \
      <(echo "${RPS[http/rl-before]}" | tr ' ' '\n' | grep -v '^$') | awk -F/ '{ printf "%.3f ", $1 / $2 }')
    table+="
ringleader / rl-before req/s: $(awk -v a="$new" -v b="$old" 'BEGIN { printf "%.3f", a / b }') (per round: $per_round; their median $(echo "$per_round" | median))"
  fi
  echo "$table"
  echo
  SUMMARY+="$table
"
done

if has_mode http && [ "$FAILOVER" != 0 ]; then
  mapfile -t PROXIES < <(proxies_for http)
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
fi
if [ ${#MODES[@]} -gt 1 ]; then
  echo
  echo "== summary"
  echo "$SUMMARY"
fi
echo
echo "(machine: $(nproc) cores; $(uname -sr); nginx $("$NGINX" -v 2>&1 | sed 's/.*\///')$([ -n "$HAPROXY" ] && echo "; HAProxy $("$HAPROXY" -v | awk 'NR == 1 { print $3 }')")$([ "$NEED_TLS" = 1 ] && echo "; $(openssl version | awk '{ print $1, $2 }')"))"
