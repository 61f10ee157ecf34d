#!/usr/bin/env bash
# tokengate beside nginx on a browser's kind of connection: HTTP/2 over TLS (ALPN h2),
# many requests in flight on one connection; and the same over cleartext HTTP/2 (h2c,
# prior knowledge), as behind a load balancer that ends TLS. Measured with h2load.
#
# The small nginx upstream of bench/proxy.sh (HTTP/1.1) is reached four ways:
#   nginx-h2   nginx as a reverse proxy, `listen … ssl` with HTTP/2, to the upstream
#              over HTTP/1.1 with keep-alive;
#   tg-h2      tokengate with `[server] tls`, its public URL https: the `token = "user"`
#              route, session cookie (`__Host-Http-tokengate`) and X-CSRF: 1, the session
#              logged in once beforehand, so every request finds it cached and adds its
#              `Authorization: Bearer`;
#   nginx-h2c  the same nginx on a cleartext HTTP/2 listener;
#   tg-h2c     a second tokengate, plain (public URL http), the same route.
# Both TLS servers use one self-signed P-256 certificate made for the run, and TLS 1.3
# (nginx is told `ssl_protocols TLSv1.2 TLSv1.3`, its default only from 1.23.4). Each nginx
# target gets the same request headers as the tokengate target beside it. Each target at
# each of CONNS connections with STREAMS streams in flight on each (h2load -c -m), for
# DURATION seconds, ROUNDS times, the targets interleaved (each round starts one further
# on). It prints requests/s, mean, p50 and p99 of the request time (from h2load's
# per-request log), requests/s over nginx's on the same protocol, and the CPU time the
# serving process spent per request (every nginx worker, every tokengate thread), the
# median of the rounds; and the TLS version and cipher each TLS target settled on.
#
# MODE=auto (the default): nothing pinned, nginx with `worker_processes auto` (the proxy
# and the upstream), tokengate at its own worker count, h2load with one thread per core
# (never more than connections) on the same machine. MODE=pinned: the proxy under test
# (one nginx worker or one tokengate worker) on PROXY_CPU; h2load (one thread), the
# upstream and the provider on LOAD_CPU. See MODE in bench/lib.sh.
#
#   bench/h2.sh    env: MODE (auto), DURATION (10), ROUNDS (3), CONNS ("1 4"),
#                       STREAMS (100), PGO (0)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${MODE:-auto}"
. bench/lib.sh
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-1 4}"
STREAMS="${STREAMS:-100}"

apt_install_missing h2load:nghttp2-client openssl:openssl
bench_init
UP=$(free_port) NGS=$(free_port) NGC=$(free_port)
GWS=$(free_port) ADMINS=$(free_port) GWC=$(free_port) ADMINC=$(free_port)
echo "machine: $(machine_line)"
echo "commit:  $(git rev-parse --short HEAD); build: $BUILD"

# Test material only: a certificate for 127.0.0.1 that lives as long as the run.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

upstream_start "$UP"

# nginx 1.25.1 made HTTP/2 a directive of its own (`http2 on;`) and deprecated the
# `http2` parameter of `listen`; older versions know only the parameter.
nginx_version="$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')"
if [ "$(printf '%s\n' 1.25.1 "$nginx_version" | sort -V | head -1)" = 1.25.1 ]; then
  listen_tls="listen 127.0.0.1:$NGS ssl; http2 on;"
  listen_h2c="listen 127.0.0.1:$NGC; http2 on;"
else
  listen_tls="listen 127.0.0.1:$NGS ssl http2;"
  listen_h2c="listen 127.0.0.1:$NGC http2;"
fi
proxy_location="location / {
      $NGINX_PROXY_PASS
    }"
# One nginx for both nginx targets (one is loaded at a time): the TLS server and the
# cleartext one.
nginx_start proxy "upstream api { server 127.0.0.1:$UP; keepalive 128; }
  server {
    $listen_tls
    # TLS 1.3 as tokengate speaks it: nginx's default list has it from 1.23.4 on only.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    $proxy_location
  }
  server {
    $listen_h2c
    $proxy_location
  }" "$PROXY_CPU"
ngx_pid=$last_pid
# curl_h2 URL [curl args...] — the status of a GET over HTTP/2: ALPN over TLS (the
# certificate not checked), prior knowledge in cleartext (nginx's cleartext HTTP/2
# listener before 1.25.1 speaks nothing else).
curl_h2() {
  local url="$1"
  shift
  case "$url" in
    https:*) curl -sk --http2 -o /dev/null -w '%{http_code}' "$@" "$url" ;;
    *) curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$@" "$url" ;;
  esac
}
for _ in $(seq 1 300); do
  [ "$(curl_h2 "http://127.0.0.1:$NGC/")" = 200 ] && [ "$(curl_h2 "https://127.0.0.1:$NGS/")" = 200 ] && break
  sleep 0.1
done

# An access token that outlives the run: the steady state, no refresh on the way.
OP_ACCESS_TOKEN_TTL=7200 provider_start "https://127.0.0.1:$GWS" "$GWC"
GW_TLS_CERT="$work/cert.pem" GW_TLS_KEY="$work/key.pem" gateway_config "$work/tls.toml" "$GWS" "$ADMINS" "$UP"
gateway_config "$work/h2c.toml" "$GWC" "$ADMINC" "$UP"
gateway_start "$work/tls.toml"
gws_pid=$gw_pid
gateway_start "$work/h2c.toml"
gwc_pid=$gw_pid
wait_http "http://127.0.0.1:$ADMINS/readyz"
wait_http "http://127.0.0.1:$ADMINC/readyz"

log "logging in once at each tokengate through the provider's form"
# Node refuses the self-signed certificate unless told not to check (this run only).
cookie_tls="$(NODE_TLS_REJECT_UNAUTHORIZED=0 NODE_NO_WARNINGS=1 node bench/login.mjs "https://127.0.0.1:$GWS" 1)"
cookie_h2c="$(node bench/login.mjs "http://127.0.0.1:$GWC" 1)"
headers_tls=(-H "Cookie: __Host-Http-tokengate=$cookie_tls" -H "X-CSRF: 1")
headers_h2c=(-H "Cookie: tokengate=$cookie_h2c" -H "X-CSRF: 1")

declare -A url=(
  [nginx-h2]="https://127.0.0.1:$NGS/api/items"
  [tg-h2]="https://127.0.0.1:$GWS/api/items"
  [nginx-h2c]="http://127.0.0.1:$NGC/api/items"
  [tg-h2c]="http://127.0.0.1:$GWC/api/items"
)
targets=(nginx-h2 tg-h2 nginx-h2c tg-h2c)
declare -A server_pid=([nginx-h2]=$ngx_pid [tg-h2]=$gws_pid [nginx-h2c]=$ngx_pid [tg-h2c]=$gwc_pid)
# headers_of TARGET — sets $hdrs to TARGET's request headers.
headers_of() {
  case "$1" in
    *-h2) hdrs=("${headers_tls[@]}") ;;
    *) hdrs=("${headers_h2c[@]}") ;;
  esac
}

# h2load_run OUT CONNS SECONDS TARGET — h2load (on LOAD_CPU with one thread when pinned;
# load_threads), STREAMS streams per connection, each request's time logged to OUT.log.
h2load_run() {
  local hdrs
  headers_of "$4"
  # h2load adds to a log file that is there already.
  rm -f "$1.log"
  $(placed "$LOAD_CPU") h2load -t"$(load_threads "$2")" -c"$2" -m"$STREAMS" -D"$3" \
    --log-file="$1.log" "${hdrs[@]}" "${url[$4]}" >"$1"
}

# h2load_figures OUT — "requests/s mean_ms p50_ms p99_ms failed" from h2load's summary
# (requests/s; failed: non-2xx answers plus requests that got none) and its per-request
# log (the request times).
h2load_figures() {
  local rps failed
  rps=$(awk '$1 == "finished" { print $4 }' "$1")
  failed=$(awk '
    $1 == "requests:" { gsub(",", ""); failed = $10 }
    $1 == "status" { gsub(",", ""); failed += $5 }
    END { print failed + 0 }' "$1")
  cut -f3 "$1.log" | sort -n | awk -v rps="$rps" -v failed="$failed" '
    { t[NR] = $1; sum += $1 }
    END {
      if (NR == 0) { print rps, 0, 0, 0, failed; exit }
      p50 = t[int((NR - 1) * 0.50) + 1]; p99 = t[int((NR - 1) * 0.99) + 1]
      printf "%.0f %.3f %.3f %.3f %d\n", rps, sum / NR / 1000, p50 / 1000, p99 / 1000, failed
    }'
}

for t in "${targets[@]}"; do
  headers_of "$t"
  status="$(curl_h2 "${url[$t]}" "${hdrs[@]}")"
  [ "$status" = 200 ] || { echo "$t answered $status, not 200" >&2; exit 1; }
done

log "warming up (2 s per target)"
for t in "${targets[@]}"; do
  h2load_run "$work/h2load.out" 1 2 "$t"
  case "$t" in
    *-h2)
      grep -q '^Application protocol: h2$' "$work/h2load.out" || { echo "$t did not settle on h2:" >&2; cat "$work/h2load.out" >&2; exit 1; }
      echo "$t: $(awk -F': ' '$1 == "TLS Protocol" { p = $2 } $1 == "Cipher" { c = $2 } END { print p, c }' "$work/h2load.out")" >>"$work/tls" ;;
    *)
      grep -q '^Application protocol: h2c$' "$work/h2load.out" || { echo "$t did not speak h2c:" >&2; cat "$work/h2load.out" >&2; exit 1; }
      ;;
  esac
done

# measure TARGET CONNS — h2load on TARGET: its figures, then the requests it completed.
measure() {
  h2load_run "$work/h2load.out" "$2" "$DURATION" "$1"
  echo "$(h2load_figures "$work/h2load.out") $(wc -l <"$work/h2load.out.log")"
}
interleaved_rounds measure "requests/s mean p50 p99 failed"
results="$work/results"

# === Report =================================================================================
echo
echo "machine after the run: $(machine_line)"
echo "median of $ROUNDS rounds of ${DURATION} s, $STREAMS streams per connection; $(mode_line h2load)"
sed 's/^/TLS: /' "$work/tls"
awk -v conns="$CONNS" "$AWK_MEDIAN"'
  { k = $1 SUBSEP $2; rps[k] = rps[k] " " $4; mean[k] = mean[k] " " $5; p50[k] = p50[k] " " $6; p99[k] = p99[k] " " $7
    failed[k] += $8; cpu[k] = cpu[k] " " $9 }
  END {
    printf "%-6s %-10s %11s %9s %9s %9s %7s %9s %12s\n", "conns", "target", "requests/s", "mean ms", "p50 ms", "p99 ms", "failed", "vs nginx", "CPU us/req"
    n = split(conns, cs, " ")
    nt = split("nginx-h2 tg-h2 nginx-h2c tg-h2c", ts, " ")
    for (i = 1; i <= n; i++) {
      for (j = 1; j <= nt; j++) {
        k = ts[j] SUBSEP cs[i]
        r = median(rps[k])
        ratio = ""
        if (ts[j] ~ /^tg-/) { base = ts[j]; sub(/^tg-/, "nginx-", base); ratio = sprintf("%.3f", r / median(rps[base SUBSEP cs[i]])) }
        printf "%-6s %-10s %11.0f %9.3f %9.3f %9.3f %7d %9s %12.2f\n", cs[i], ts[j], r, median(mean[k]), median(p50[k]), median(p99[k]), failed[k], ratio, median(cpu[k])
      }
    }
  }' "$results"
if awk '$8 > 0 { bad = 1 } END { exit !bad }' "$results"; then
  echo "some requests failed (see the failed column)" >&2
  exit 1
fi
