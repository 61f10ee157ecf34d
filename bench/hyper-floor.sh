#!/usr/bin/env bash
# How close can a proxy built on hyper come to nginx? The floor under tokengate's
# proxying, beside nginx and tokengate, in one run on loopback.
#
#   floor     bench/hyper_floor.rs: hyper's HTTP/1 server and client on tokio's
#             current-thread runtime, one upstream connection per client connection,
#             requests passed through untouched — nothing of tokengate's;
#   nginx     nginx as a plain reverse proxy with upstream keep-alive;
#   tg-none   tokengate, a `token = "none"` route;
#   tg-user   tokengate, a `token = "user"` route (logged in once; the bearer token goes
#             upstream);
# all on PROXY_CPU alone, against the same small nginx upstream, wrk on LOAD_CPU (the CPU
# split of bench/proxy.sh), every request carrying the session cookie and `X-CSRF: 1`.
# With PAD=N, floor+pad, nginx+pad and tg-none+pad are the same three with an N-byte
# `X-Pad` header on every request, which each proxy passes on: what N more bytes each way
# cost a proxy here, to set beside the user route's bearer (it adds its bytes upstream).
# Each round starts with a different target (see bench/proxy.sh).
# Prints requests/s, p50 and p99 (median of the rounds) and each one's requests/s over
# nginx's; then, from a `perf` sample of PROXY_CPU under CONNS connections (SPLIT_SECONDS
# per target, 0 to skip), how many microseconds of that core each request costs in the
# kernel and in user space.
#
# tokengate and the floor are plain release builds (PGO=0); with PGO=1 both are
# profile-guided — tokengate as in bench/proxy.sh, the floor from a profile of 10 s of
# wrk through it — so that like is compared with like either way.
#
#   bench/hyper-floor.sh     env: DURATION (10), ROUNDS (3), CONNS (64), SPLIT_SECONDS (6),
#                            PGO (0), PAD (0)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-64}"
SPLIT_SECONDS="${SPLIT_SECONDS:-6}"
PGO="${PGO:-0}"
PAD="${PAD:-0}"

[ "$SPLIT_SECONDS" = 0 ] || apt_install_missing perf:linux-perf
bench_init
UP=$(free_port) NGX=$(free_port) FL=$(free_port) GW=$(free_port) ADMIN=$(free_port)
upstream_start "$UP"
log "building bench/hyper_floor.rs"
if [ "$PGO" = 0 ]; then
  FLOOR="$(floor_build "" "$CARGO_TARGET_DIR")"
else
  # The floor's own profile-guided build: instrumented, 10 s of wrk through it, again
  # with the counts (the profile is made afresh each run; it takes a few seconds).
  llvm_tools
  pgo="$CARGO_TARGET_DIR/pgo"
  FLOOR="$(floor_build "-Cprofile-generate=$pgo/scratch" "$pgo/floor-instrumented")"
  rm -rf "$pgo/floor-raw"
  LLVM_PROFILE_FILE="$pgo/floor-raw/%p-%m.profraw" \
    bench_bg taskset -c "$PROXY_CPU" "$FLOOR" "127.0.0.1:$FL" "127.0.0.1:$UP"
  wait_http "http://127.0.0.1:$FL/"
  wrk_run "$work/floor-training" 64 10 "http://127.0.0.1:$FL/api/items"
  bench_stop "$last_pid"
  "$LLVM_TOOLS/llvm-profdata" merge -o "$pgo/floor.profdata" "$pgo/floor-raw"
  FLOOR="$(floor_build "-Cprofile-use=$pgo/floor.profdata" "$pgo/floor-optimised")"
fi
echo "machine: $(machine_line)"
echo "commit:  $(git rev-parse --short HEAD); builds: $BUILD"

nginx_start proxy "upstream api { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }" "$PROXY_CPU"
wait_http "http://127.0.0.1:$NGX/"
bench_bg taskset -c "$PROXY_CPU" "$FLOOR" "127.0.0.1:$FL" "127.0.0.1:$UP"
wait_http "http://127.0.0.1:$FL/"
provider_start "$GW"
gateway_config "$work/gateway.toml" "$GW" "$ADMIN" "$UP"
gateway_start "$work/gateway.toml"
wait_http "http://127.0.0.1:$ADMIN/readyz"
login_once "$GW" /api/items

declare -A url=(
  [floor]="http://127.0.0.1:$FL/api/items"
  [nginx]="http://127.0.0.1:$NGX/api/items"
  [tg-none]="http://127.0.0.1:$GW/public/items"
  [tg-user]="http://127.0.0.1:$GW/api/items"
)
targets=(floor nginx tg-none tg-user)
if [ "$PAD" != 0 ]; then
  for t in floor nginx tg-none; do url[$t+pad]="${url[$t]}"; done
  targets+=(floor+pad nginx+pad tg-none+pad)
fi
pad_header="X-Pad: $(head -c "$PAD" /dev/zero | tr '\0' a)"
# wrk_on CONNS SECONDS TARGET — wrk on TARGET, its figures in $work/wrk.out.
wrk_on() {
  local extra=()
  [[ "$3" == *+pad ]] && extra=(-H "$pad_header")
  wrk_run "$work/wrk.out" "$1" "$2" "${url[$3]}" "${headers[@]}" "${extra[@]}"
}
log "warming up (2 s per target)"
for t in "${targets[@]}"; do wrk_on 64 2 "$t"; done

: >"$work/results"
for round in $(seq 1 "$ROUNDS"); do
  round_order "$round" "${targets[@]}"
  for c in $CONNS; do
    for t in "${order[@]}"; do
      wrk_on "$c" "$DURATION" "$t"
      fig="$(wrk_figures "$work/wrk.out")"
      echo "$t $c $fig" >>"$work/results"
      log "round $round/$ROUNDS, $c connections, $t: $fig (requests/s p50 p99 failed)"
    done
  done
done

echo
echo "machine after the run: $(machine_line)"
echo "median of $ROUNDS rounds of ${DURATION} s; proxies on CPU $PROXY_CPU, wrk + upstream + provider on CPU $LOAD_CPU"
awk "$AWK_MEDIAN"'
  { k = $1 " " $2; if (!(k in rps)) order[++n] = k; rps[k] = rps[k] " " $3; p50[k] = p50[k] " " $4; p99[k] = p99[k] " " $5; failed[k] += $6 }
  END {
    printf "%-6s %-11s %11s %9s %9s %7s %9s\n", "conns", "target", "requests/s", "p50 ms", "p99 ms", "failed", "vs nginx"
    for (i = 1; i <= n; i++) {
      split(order[i], kc, " ")
      limit = median(rps["nginx " kc[2]])
      r = median(rps[order[i]])
      printf "%-6s %-11s %11.0f %9.3f %9.3f %7d %9.3f\n", kc[2], kc[1], r, median(p50[order[i]]), median(p99[order[i]]), failed[order[i]], r / limit
    }
  }' "$work/results"

[ "$SPLIT_SECONDS" = 0 ] && exit 0
# Where each request's time on the proxy's core goes: sample the whole core (kernel work
# done there on the proxy's behalf, softirqs included) while the proxy is loaded, and
# divide its samples between kernel and user space (the proxy's binary, libc, vDSO).
log "sampling CPU $PROXY_CPU under $CONNS connections, $SPLIT_SECONDS s per target"
: >"$work/split"
for t in "${targets[@]}"; do
  wrk_on "$CONNS" $((SPLIT_SECONDS + 2)) "$t" &
  load=$!
  sleep 1 # wrk's connections open before sampling starts
  perf record --quiet -e cpu-clock -F 997 -C "$PROXY_CPU" -o "$work/perf.data" \
    -- sleep "$SPLIT_SECONDS" 2>"$work/perf.log" || { cat "$work/perf.log" >&2; exit 1; }
  wait "$load"
  rps="$(wrk_figures "$work/wrk.out" | awk '{ print $1 }')"
  perf report --quiet -i "$work/perf.data" --no-children --sort dso 2>/dev/null |
    awk -v t="$t" -v rps="$rps" '
      $1 ~ /%$/ { p = $1 + 0; if ($2 == "[kernel.kallsyms]") k += p; else u += p }
      END { us = 1e6 / rps; printf "%-11s %11d %9.2f %9.2f %9.2f %8.0f%%\n", t, rps, us, us * k / 100, us * u / 100, k }' \
      >>"$work/split"
done
echo
echo "the proxy's core per request, at $CONNS connections (perf, $SPLIT_SECONDS s each; the core is busy throughout)"
printf "%-11s %11s %9s %9s %9s %9s\n" target requests/s "µs/req" kernel user "kernel %"
cat "$work/split"
