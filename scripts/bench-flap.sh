#!/usr/bin/env bash
# bench-flap.sh: failover under churn (issue #11), ringleader and nginx side by side.
#
# Three nginx backends on loopback, wrk sending GETs through the proxy for DURATION
# seconds. Counted per run: requests, failed requests (non-2xx answers + wrk socket
# errors), and for ringleader its retries, retries refused by the budget, panic
# picks (from /metrics) and ejections (from its log).
#
#   flap      every PERIOD s a backend is stopped (SIGTERM: its connections close,
#             connects are refused) and restarted DOWN s later, the victim rotating
#             b1, b2, b3: the next backend to die dies while the previous one may
#             still be ejected (issue #11). ringleader with its documented defaults
#             (round robin, active checks every 1 s rise 2 fall 2, passive
#             detection, retries on connect_error and timeout), the same with
#             max_ejection_percent = 100, and nginx with max_fails=1 and
#             proxy_next_upstream error timeout, once per fail_timeout in
#             NGINX_FAIL_TIMEOUTS (10s is nginx's default, 5s bench-proxy.sh's).
#   flap-one  the same, always the same victim (VICTIM, b2).
#   hang      backend b3 answers its health checks but never a request (its `/`
#             goes to a frozen nginx), for the whole run: every request to it times
#             out (request_timeout / proxy_read_timeout 500 ms; timeout ejection
#             off in ringleader). round robin against least_response_time, and nginx.
#   stall     (not in the default list) the flap victim is frozen (SIGSTOP/SIGCONT)
#             instead of stopped: it accepts connections and answers late.
#   steady    (not in the default list) no churn: a throughput control.
#
# Every process it starts (backends, nginx, ringleader, wrk, the flapper) is
# stopped by pid on exit. Installs nothing; needs nginx and wrk
# (Debian/Ubuntu: apt-get install -y nginx wrk).
#
# Usage: scripts/bench-flap.sh                      (30 s per run)
#   DURATION=90 CONNECTIONS=32 THREADS=2 PERIOD=3 DOWN=1.5 BASE_PORT=19000 scripts/bench-flap.sh
#   RINGLEADER=path/to/ringleader                   (default: cargo build --release)
#   RINGLEADER_BEFORE=path/to/old/ringleader         (also run an older build, rows "before")
#   SCENARIOS="flap flap-one hang"                   (which ones, in order)
#   NGINX_FAIL_TIMEOUTS="10s 5s"                     (one nginx run per value)
#   LOGS=dir                                         (keep ringleader's log of each run there)
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPT=bench-flap
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PERIOD=${PERIOD:-3}
DOWN=${DOWN:-1.5}
VICTIM=${VICTIM:-b2}
BASE_PORT=${BASE_PORT:-19000}
SCENARIOS=${SCENARIOS:-flap flap-one hang}
NGINX_FAIL_TIMEOUTS=${NGINX_FAIL_TIMEOUTS:-10s 5s}
RINGLEADER_BEFORE=${RINGLEADER_BEFORE:-}

for tool in nginx wrk; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "bench-flap: $tool is missing (Debian/Ubuntu: apt-get install -y nginx wrk)" >&2
    exit 1
  fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
SETSID=$(command -v setsid || true)

if [ -z "${RINGLEADER:-}" ]; then
  echo "== building ringleader (release)"
  cargo build --release -q -p ringleader-cli --bin ringleader
  RINGLEADER=${CARGO_TARGET_DIR:-target}/release/ringleader
fi

B1=$((BASE_PORT + 1)); B2=$((BASE_PORT + 2)); B3=$((BASE_PORT + 3)); HOLE=$((BASE_PORT + 4))
P_NGINX=$((BASE_PORT + 80)); P_RL=$((BASE_PORT + 82)); P_ADMIN=$((BASE_PORT + 92))
for port in $B1 $B2 $B3 $HOLE $P_NGINX $P_RL $P_ADMIN; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "bench-flap: port $port is in use; set BASE_PORT to a free range" >&2
    exit 1
  fi
done

WORK=$(mktemp -d -t ringleader-flap.XXXXXX)
PIDS=()        # ringleader, wrk, flapper: stopped by pid on exit
cleanup() {
  set +e
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  for f in "$WORK"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    # A frozen backend must be thawed to act on SIGTERM.
    kill -CONT "$pid" $(pgrep -P "$pid" 2>/dev/null) 2>/dev/null
    kill "$pid" 2>/dev/null
  done
  sleep 0.3
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS" && cp "$WORK"/log-*.txt "$LOGS"/ 2>/dev/null; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------- backends: nginx, one worker each ----------


port_of() { case $1 in b1) echo "$B1" ;; b2) echo "$B2" ;; b3) echo "$B3" ;; hole) echo "$HOLE" ;; esac; }

# A backend; with $2 = hang, its `/` waits on the (frozen) hole for an hour.
write_backend_conf() { # $1 = name, $2 = serve | hang
  local port; port=$(port_of "$1")
  local root='default_type text/plain; return 200 "hello from '"$1"'\n";'
  [ "$2" = hang ] && root="proxy_pass http://127.0.0.1:$HOLE; proxy_read_timeout 3600s;"
  { nginx_common "$1" error; cat <<EOF
  server {
    listen 127.0.0.1:$port;
    location /healthz { return 200 "ok\n"; }
    location / { $root }
  }
}
EOF
  } > "$WORK/$1.conf"
}

start_backend() { # $1 = name
  [ -f "$WORK/$1.conf" ] || write_backend_conf "$1" serve
  "$NGINX" -p "$WORK" -c "$WORK/$1.conf" -e "$WORK/$1.error.log"
}

stop_backend() { # $1 = name: fast shutdown, open connections are closed
  local f="$WORK/$1.pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  # nginx removes its pid file as it exits (kill -0 would see the zombie until
  # whoever adopted the daemon reaps it).
  for _ in $(seq 200); do [ -f "$f" ] || break; sleep 0.01; done
  rm -f "$f"
}

freeze_backend() { # $1 = name, $2 = STOP | CONT (master and worker)
  local pid; pid=$(cat "$WORK/$1.pid")
  kill -"$2" "$pid" $(pgrep -P "$pid") 2>/dev/null || true
}


all_backends_up() {
  for b in b1 b2 b3; do
    if [ -f "$WORK/$b.pid" ]; then freeze_backend "$b" CONT; else start_backend "$b"; fi
  done
  for port in $B1 $B2 $B3; do wait_port "$port"; done
}

# The flapper: every PERIOD s, stop (flap, flap-one) or freeze (stall) the victim
# for DOWN s; nothing for hang and steady.
# It keeps to the schedule (stop at k * PERIOD, restart DOWN later, from its
# start), whatever stopping and starting cost, and logs what it did when.
flapper() { # $1 = scenario
  local i=0 victim t0
  case $1 in hang | steady) exec sleep infinity ;; esac
  t0=$(date +%s.%N)
  until_t() { # sleep until t0 + $1 seconds
    local left; left=$(awk -v t0="$t0" -v at="$1" -v now="$(date +%s.%N)" 'BEGIN { d = t0 + at - now; print (d > 0 ? d : 0) }')
    sleep "$left"
  }
  while true; do
    case $1 in flap) victim=b$((i % 3 + 1)) ;; *) victim=$VICTIM ;; esac
    if [ "$1" = stall ]; then freeze_backend "$victim" STOP; else stop_backend "$victim"; fi
    echo "$(date +%s.%N) down $victim" >> "$WORK/flapper.log"
    until_t "$(awk -v i="$i" -v p="$PERIOD" -v d="$DOWN" 'BEGIN { print i * p + d }')"
    if [ "$1" = stall ]; then freeze_backend "$victim" CONT; else start_backend "$victim"; fi
    echo "$(date +%s.%N) up $victim" >> "$WORK/flapper.log"
    i=$((i + 1))
    until_t "$(awk -v i="$i" -v p="$PERIOD" 'BEGIN { print i * p }')"
  done
}

# hang: b3's `/` goes to the hole, an nginx frozen for the whole run (the kernel
# accepts its connections, nothing answers them); b3's health checks pass.
hang_on() {
  stop_backend b3
  write_backend_conf b3 hang
  start_backend b3
  write_backend_conf hole serve
  start_backend hole
  wait_port "$HOLE"
  freeze_backend hole STOP
}
hang_off() {
  freeze_backend hole CONT
  stop_backend hole
  stop_backend b3
  write_backend_conf b3 serve
  start_backend b3
}

# ---------- the proxies ----------

start_nginx_proxy() { # $1 = read timeout, $2 = fail_timeout
  { nginx_common nginx-proxy error; cat <<EOF
  upstream app {
    server 127.0.0.1:$B1 max_fails=1 fail_timeout=$2;
    server 127.0.0.1:$B2 max_fails=1 fail_timeout=$2;
    server 127.0.0.1:$B3 max_fails=1 fail_timeout=$2;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_connect_timeout 1s;
      proxy_read_timeout $1;
    }
  }
}
EOF
  } > "$WORK/nginx-proxy.conf"
  "$NGINX" -p "$WORK" -c "$WORK/nginx-proxy.conf" -e "$WORK/nginx-proxy.error.log"
  wait_port "$P_NGINX"
}

RL_PID=
start_ringleader() { # $1 = binary, $2 = strategy, $3 = request_timeout, $4 = extra [passive] lines
  cat > "$WORK/ringleader.toml" <<EOF
[server]
listen = "127.0.0.1:$P_RL"
admin = "127.0.0.1:$P_ADMIN"
workers = 1
request_timeout = "$3"
[upstream.app]
strategy = "$2"
backends = [{ addr = "127.0.0.1:$B1" }, { addr = "127.0.0.1:$B2" }, { addr = "127.0.0.1:$B3" }]
[upstream.app.health]
path = "/healthz"
interval = "1s"
rise = 2
fall = 2
[upstream.app.passive]
$4
EOF
  # A session of its own, like the daemonized nginx (see bench-proxy.sh).
  RUST_LOG=info $SETSID "$1" serve -c "$WORK/ringleader.toml" 2> "$WORK/ringleader.log" &
  RL_PID=$!
  PIDS+=("$RL_PID")
  wait_port "$P_RL"
}

stop_ringleader() {
  kill -TERM "$RL_PID" 2>/dev/null || true
  wait "$RL_PID" 2>/dev/null || true
}

metric() { # $1 = metric name (with labels), from the running ringleader
  local v
  v=$(exec 3<>"/dev/tcp/127.0.0.1/$P_ADMIN" && printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && cat <&3 |
    awk -v m="$1" '$1 == m { print $2 }')
  echo "${v:-0}"
}

# ---------- one run ----------

ROWS=()
run() { # $1 = scenario, $2 = label, $3 = port, $4 = ringleader? (yes/no)
  all_backends_up
  sleep 2.5 # every proxy sees every backend up (two passing checks)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s "http://127.0.0.1:$3/" > "$WORK/wrk.txt" &
  local wrk_pid=$!
  PIDS+=("$wrk_pid")
  flapper "$1" &
  local flap_pid=$!
  PIDS+=("$flap_pid")
  wait "$wrk_pid"
  kill $(pgrep -P "$flap_pid" || true) "$flap_pid" 2>/dev/null || true # the flapper and its sleep
  wait "$flap_pid" 2>/dev/null || true
  local downs=0
  [ -f "$WORK/flapper.log" ] && downs=$(grep -c " down " "$WORK/flapper.log" || true)
  [ -f "$WORK/flapper.log" ] && mv "$WORK/flapper.log" "$WORK/log-$1-$(echo "$2" | tr -c 'a-z0-9' '_')-flapper.txt"
  local out total non2xx errors failed pct retries exhausted panic ejected
  out=$(cat "$WORK/wrk.txt")
  total=$(echo "$out" | awk '/requests in/ { print $1 }')
  non2xx=$(echo "$out" | awk '/Non-2xx/ { print $NF }')
  errors=$(echo "$out" | awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }')
  failed=$(( ${non2xx:-0} + ${errors:-0} ))
  pct=$(awk -v f="$failed" -v t="$total" 'BEGIN { printf "%.2f", t ? 100 * f / t : 0 }')
  if [ "$4" = yes ]; then
    retries=$(metric ringleader_retries_total)
    exhausted=$(metric ringleader_retries_budget_exhausted_total)
    panic=$(metric 'ringleader_upstream_panic_picks_total{upstream="app"}')
    ejected=$(grep -c "backend ejected" "$WORK/ringleader.log" || true)
  else
    retries=-; exhausted=-; panic=-; ejected=-
  fi
  printf '  %-8s %-44s %9s requests  %7s failed (%s%%)  %s stops\n' "$1" "$2" "$total" "$failed" "$pct" "$downs"
  ROWS+=("| $1 | $2 | $downs | $total | $failed | $pct | ${non2xx:-0} / ${errors:-0} | $retries | $exhausted | $panic | $ejected |")
}

rl_run() { # $1 = scenario, $2 = label, $3 = binary, $4 = strategy, $5 = request_timeout, $6 = passive lines
  start_ringleader "$3" "$4" "$5" "$6"
  run "$1" "$2" "$P_RL" yes
  cp "$WORK/ringleader.log" "$WORK/log-$1-$(echo "$2" | tr -c 'a-z0-9' '_').txt"
  stop_ringleader
}

ng_run() { # $1 = scenario, $2 = read timeout, $3 = fail_timeout
  start_nginx_proxy "$2" "$3"
  run "$1" "nginx (max_fails=1 fail_timeout=$3)" "$P_NGINX" no
  stop_backend nginx-proxy
}

echo "== $SCENARIOS: ${DURATION}s of wrk -t$THREADS -c$CONNECTIONS per run; churn: down ${DOWN}s every ${PERIOD}s"
BINARIES=("ringleader:$RINGLEADER")
[ -n "$RINGLEADER_BEFORE" ] && BINARIES+=("ringleader before:$RINGLEADER_BEFORE")
for scenario in $SCENARIOS; do
  case $scenario in
    flap | flap-one | stall | steady)
      for ft in $NGINX_FAIL_TIMEOUTS; do ng_run "$scenario" 60s "$ft"; done
      for entry in "${BINARIES[@]}"; do
        name=${entry%%:*}; bin=${entry#*:}
        rl_run "$scenario" "$name, defaults" "$bin" round_robin 30s ""
        rl_run "$scenario" "$name, max_ejection_percent = 100" "$bin" round_robin 30s "max_ejection_percent = 100"
      done
      ;;
    hang)
      all_backends_up
      hang_on
      ng_run hang 500ms 10s
      for entry in "${BINARIES[@]}"; do
        name=${entry%%:*}; bin=${entry#*:}
        for strategy in round_robin least_response_time; do
          rl_run hang "$name, $strategy" "$bin" "$strategy" 500ms "consecutive_failures = 0"
        done
      done
      hang_off
      ;;
    *) echo "bench-flap: unknown scenario $scenario" >&2; exit 1 ;;
  esac
done

echo
echo "| scenario | proxy | stops | requests | failed | failed % | non-2xx / socket errors | retries | budget exhausted | panic picks | ejections |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "(machine: $(nproc) cores; $(uname -sr); nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'); $(date -u '+%Y-%m-%d %H:%M UTC'))"
