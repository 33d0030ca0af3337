# lib.sh: pieces the benchmark harnesses share (sourced by bench-proxy.sh and bench-flap.sh).
# Expects $WORK (a scratch directory) and $SCRIPT (the harness's name, for messages).

# The opening of an nginx config in $WORK: one worker, daemonized (a session of its
# own), its pid, logs and temp paths under $WORK, keep-alive without a request cap.
# Leaves the `http {` block open for the caller's upstreams and servers.
nginx_common() { # $1 = name, $2 = error_log level (default warn)
  cat <<NGINX
worker_processes 1;
daemon on;
pid $WORK/$1.pid;
error_log $WORK/$1.error.log ${2:-warn};
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1.body;
  proxy_temp_path $WORK/$1.proxy;
  fastcgi_temp_path $WORK/$1.fcgi;
  uwsgi_temp_path $WORK/$1.uwsgi;
  scgi_temp_path $WORK/$1.scgi;
  keepalive_requests 1000000;
NGINX
}

# Wait up to 10 s for something to listen on 127.0.0.1:$1, else stop the harness.
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$SCRIPT: nothing listening on $1" >&2; exit 1
}

# A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, valid 2 days,
# made at run time: $1/cert.pem and $1/key.pem (PKCS#8), and $1/cert+key.pem
# (both in one file, as HAProxy's `crt` reads them).
make_cert() { # $1 = directory
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null \
    || { echo "$SCRIPT: openssl could not make a certificate" >&2; exit 1; }
  cat "$1/cert.pem" "$1/key.pem" > "$1/cert+key.pem"
}

# CPU time (user + system) a process has used so far, in clock ticks.
cpu_ticks() { # $1 = pid
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
