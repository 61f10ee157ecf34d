#!/usr/bin/env bash
# tokengate beside a plain nginx reverse proxy, measured with wrk in one run on loopback.
#
# One small upstream — nginx answering every request with 200 and a small JSON body — is
# reached five ways:
#   upstream  directly;
#   nginx     through nginx as a plain reverse proxy with upstream keep-alive: the limit;
#   nginx+tok the same nginx adding `Authorization: Bearer` with the very token tokengate
#             sends (learnt through the upstream, which echoes it on one path): what the
#             token's bytes cost a proxy by themselves, so the gap can be read in two parts;
#   tg-user   through tokengate, a `token = "user"` route: session cookie and X-CSRF: 1,
#             the session logged in once beforehand through the test provider's form, so
#             every request finds it cached and adds its `Authorization: Bearer`;
#   tg-none   through tokengate, a `token = "none"` route;
# each at 1, 16 and 64 connections, for DURATION seconds, ROUNDS times. Rounds interleave
# the targets, so a noisy moment hits them alike, and each round starts with a different
# one: on this machine the order alone has moved a pair of figures by more than 10 %.
# Every target gets the same request headers. It prints requests/s, p50 and p99 (the
# median of the rounds), requests/s over plain nginx's, and for tg-user also over
# nginx+tok's, and the CPU time (user and system, from /proc) the process serving the
# target spent per request — the figure that does not depend on what else the machine's
# load side is doing; then tokengate's start-up time to ready (provider on this machine),
# its idle RSS and the release binary's size.
#
# POST_BYTES=N makes every request a POST with a JSON body of N bytes (at least 11),
# framed by Content-Length: what an SPA's writes cost, through each proxy to the same
# upstream. nginx keeps its defaults here too: a body larger than client_body_buffer_size
# (16 KiB) goes to a temporary file before it is sent on (POST_BYTES=65536 measures that).
#
# MODE=auto (the default) measures what a user gets: nothing pinned, nginx with
# `worker_processes auto` (the proxies and the upstream), tokengate at its own worker
# count, wrk with one thread per core (one at one connection) on the same machine; the
# CPU column counts every nginx worker and every tokengate thread. MODE=pinned is the
# one-core comparison: the proxy under test — nginx with `worker_processes 1`, or
# tokengate with one worker — alone on PROXY_CPU (default 1); wrk (one thread), the
# upstream nginx (one worker) and the provider share LOAD_CPU (default 0). See MODE in
# bench/lib.sh.
#
# tokengate is the plain `cargo build --release`; PGO=1 measures the profile-guided build
# of `PGO=1 scripts/build-release` instead.
#
#   bench/proxy.sh        env: MODE (auto), DURATION (10), ROUNDS (3), CONNS ("1 16 64"),
#                              PGO (0), POST_BYTES (0: GET)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${MODE:-auto}"
. bench/lib.sh
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-1 16 64}"
POST_BYTES="${POST_BYTES:-0}"

bench_init
UP=$(free_port) NGX=$(free_port) NGXT=$(free_port) GW=$(free_port) ADMIN=$(free_port)
echo "machine: $(machine_line)"
echo "commit:  $(git rev-parse --short HEAD); build: $BUILD"

upstream_start "$UP"
up_pid=$last_pid
nginx_proxy proxy "$NGX" "$UP"
ngx_pid=$last_pid

# An access token that outlives the run: the steady state, no refresh on the way.
OP_ACCESS_TOKEN_TTL=7200 provider_start "$GW"
gateway_config "$work/gateway.toml" "$GW" "$ADMIN" "$UP"

# === Start-up time to ready, five times =================================================
# On PROXY_CPU when pinned; in auto mode anywhere, at tokengate's own worker count.
log "start-up time to ready"
startup_cpu=""
[ "$MODE" = pinned ] && startup_cpu="$PROXY_CPU"
python3 - "$BIN" "$work/gateway.toml" "$ADMIN" "$startup_cpu" <<'PY'
import http.client, os, statistics, subprocess, sys, time
binary, config, admin = sys.argv[1], sys.argv[2], int(sys.argv[3])
pin = (lambda: os.sched_setaffinity(0, {int(sys.argv[4])})) if sys.argv[4] else None
def ready():
    try:
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=1)
        c.request("GET", "/readyz")
        return c.getresponse().status == 200
    except OSError:
        return False
times = []
for _ in range(5):
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "run", "--config", config], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=pin)
    while not ready():
        if time.monotonic() - t0 > 10:
            p.kill()
            sys.exit("tokengate was not ready within 10 s")
        time.sleep(0.0005)
    times.append((time.monotonic() - t0) * 1000)
    p.terminate()
    p.wait()
print("start-up to ready: median %.1f ms (min %.1f, max %.1f, 5 starts)"
      % (statistics.median(times), min(times), max(times)))
PY

# === The gateway under load ===============================================================
gateway_start "$work/gateway.toml"
wait_http "http://127.0.0.1:$ADMIN/readyz"
log "logging in once through the provider's form"
login_once "$GW" /api/items
idle_rss=$(rss_kib "$gw_pid")
bearer="$(curl -sf "http://127.0.0.1:$GW/api/echo-authorization" "${headers[@]}")"
case "$bearer" in
  "Bearer "?*) log "the bearer tokengate sends: ${#bearer} bytes" ;;
  *) echo "the upstream did not see a bearer through tokengate: '$bearer'" >&2; exit 1 ;;
esac
nginx_proxy proxy-token "$NGXT" "$UP" "proxy_set_header Authorization \"$bearer\";"
ngxt_pid=$last_pid

declare -A url=(
  [upstream]="http://127.0.0.1:$UP/api/items"
  [nginx]="http://127.0.0.1:$NGX/api/items"
  [nginx+tok]="http://127.0.0.1:$NGXT/api/items"
  [tg-user]="http://127.0.0.1:$GW/api/items"
  [tg-none]="http://127.0.0.1:$GW/public/items"
)
targets=(upstream nginx nginx+tok tg-user tg-none)
# The process that serves each target (nginx: its master, whose workers are counted too;
# tokengate: one process, its threads all in its figures).
declare -A server_pid=([upstream]=$up_pid [nginx]=$ngx_pid [nginx+tok]=$ngxt_pid [tg-user]=$gw_pid [tg-none]=$gw_pid)

load=("${headers[@]}")
if [ "$POST_BYTES" -gt 0 ]; then
  python3 - "$POST_BYTES" >"$work/post.lua" <<'PY'
import sys
n = int(sys.argv[1])
body = '{"note":"' + "x" * max(0, n - 11) + '"}'
print('wrk.method = "POST"')
print('wrk.headers["Content-Type"] = "application/json"')
print("wrk.body = '%s'" % body)
PY
  load+=(-s "$work/post.lua")
  status="$(curl -s -o /dev/null -w '%{http_code}' "${headers[@]}" -H 'Content-Type: application/json' --data-binary '{}' "${url[tg-user]}")"
  [ "$status" = 200 ] || { echo "a POST through tokengate answered $status, not 200" >&2; exit 1; }
  log "every request a POST with a ${POST_BYTES}-byte body"
fi

log "warming up (2 s per target)"
for t in "${targets[@]}"; do wrk_run "$work/wrk.out" 64 2 "${url[$t]}" "${load[@]}"; done

# measure TARGET CONNS — wrk on TARGET: its figures, then the requests it completed.
measure() {
  wrk_run "$work/wrk.out" "$2" "$DURATION" "${url[$1]}" "${load[@]}"
  echo "$(wrk_figures "$work/wrk.out") $(awk '/ requests in / { print $1 }' "$work/wrk.out")"
}
interleaved_rounds measure "requests/s p50 p99 failed"
results="$work/results"
loaded_rss=$(rss_kib "$gw_pid")

# === Report =================================================================================
echo
echo "machine after the run: $(machine_line)"
echo "median of $ROUNDS rounds of ${DURATION} s; $(mode_line)"
awk -v conns="$CONNS" "$AWK_MEDIAN$AWK_ROUNDS"'
  END {
    printf "%-6s %-9s %11s %9s %9s %7s %9s %9s %12s\n", "conns", "target", "requests/s", "p50 ms", "p99 ms", "failed", "vs nginx", "vs +tok", "CPU us/req"
    n = split(conns, cs, " ")
    nt = split("upstream nginx nginx+tok tg-user tg-none", ts, " ")
    for (i = 1; i <= n; i++) {
      limit = median(rps["nginx" SUBSEP cs[i]])
      with_token = median(rps["nginx+tok" SUBSEP cs[i]])
      for (j = 1; j <= nt; j++) {
        k = ts[j] SUBSEP cs[i]
        r = median(rps[k])
        ratio = ts[j] ~ /^(tg-|nginx\+)/ ? sprintf("%.3f", r / limit) : ""
        ratio_token = ts[j] == "tg-user" ? sprintf("%.3f", r / with_token) : ""
        printf "%-6s %-9s %11.0f %9.3f %9.3f %7d %9s %9s %12.2f\n", cs[i], ts[j], r, median(p50[k]), median(p99[k]), failed[k], ratio, ratio_token, median(cpu[k])
      }
    }
  }' "$results"
echo
echo "tokengate RSS: idle (ready, one session) $((idle_rss / 1024)) MiB ($idle_rss KiB); after the load $((loaded_rss / 1024)) MiB ($loaded_rss KiB)"
strip -o "$work/stripped" "$BIN"
echo "release binary: $(stat -c %s "$BIN") bytes as built, $(stat -c %s "$work/stripped") bytes stripped"
if awk '$7 > 0 { bad = 1 } END { exit !bad }' "$results"; then
  echo "some requests failed (see the failed column)" >&2
  exit 1
fi
