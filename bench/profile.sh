#!/usr/bin/env bash
# Instructions per request on the hot path — a `token = "user"` request whose session is
# cached — counted by callgrind, with the functions that spend them.
#
# Instructions, not time: the count hardly moves when other work shares the machine, so
# it is the figure to decide an optimisation on and to check it by. tokengate is built
# with line tables (a "profiling" profile: release plus debug line info), run under
# callgrind with instrumentation off, logged in once through the test provider, warmed up;
# instrumentation is on only while wrk sends CONNS connections' worth of requests for SECONDS.
# The requests are counted by tokengate itself (`tokengate_requests_total`).
#
# FLOOR=1 profiles bench/hyper_floor.rs instead (hyper's server and client passing the same
# requests through, nothing of tokengate's; see bench/hyper-floor.sh), its requests
# counted by wrk: what tokengate adds over it is the difference.
#
#   bench/profile.sh [OUT]     env: SECONDS_UNDER_LOAD (20), CONNS (16), ROUTE (/api/items),
#                                   GW_ACCESS_LOG (0; 1: the access log on, its lines to a
#                                   file, in TOKENGATE_LOG_FORMAT's format), FLOOR (0)
#
# Prints instructions per request and the 30 most expensive functions, inclusive and
# exclusive (callgrind_annotate); with OUT, writes the same summary there, and the raw
# callgrind output beside it as OUT.callgrind (for `callgrind_annotate --tree=caller`).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
OUT="${1:-}"
SECONDS_UNDER_LOAD="${SECONDS_UNDER_LOAD:-20}"
CONNS="${CONNS:-16}"
ROUTE="${ROUTE:-/api/items}"

FLOOR="${FLOOR:-0}"

apt_install_missing valgrind:valgrind
bench_init --no-release-build
callgrind=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out")
if [ "$FLOOR" = 1 ]; then
  log "building bench/hyper_floor.rs"
  floor="$(floor_build "" "$CARGO_TARGET_DIR")"
  UP=$(free_port) GW=$(free_port)
  upstream_start "$UP"
  bench_bg "${callgrind[@]}" "$floor" "127.0.0.1:$GW" "127.0.0.1:$UP"
  vg_pid=$last_pid
  wait_http "http://127.0.0.1:$GW$ROUTE"
  # The headers tokengate's requests carry: a session cookie's bytes and `X-CSRF: 1`.
  headers=(-H "Cookie: tokengate=$(head -c 32 /dev/urandom | base64 | tr -d '=+/' | head -c 43)" -H "X-CSRF: 1")
  # Completed requests, as wrk counts them.
  requests() { awk '/ requests in / { print $1 }' "$work/wrk.out"; }
else
  hot_path_setup "$ROUTE" "${callgrind[@]}"
  vg_pid=$gw_pid
  requests() { curl -sf "http://127.0.0.1:$ADMIN/metrics" | awk '$1 == "tokengate_requests_total" { print $2 }'; }
fi

log "warming up"
wrk_run "$work/wrk.out" "$CONNS" 3 "http://127.0.0.1:$GW$ROUTE" "${headers[@]}"
before=$(requests)
[ "$FLOOR" = 1 ] && before=0
callgrind_control --instr=on "$vg_pid" >/dev/null
log "counting for $SECONDS_UNDER_LOAD s"
wrk_run "$work/wrk.out" "$CONNS" "$SECONDS_UNDER_LOAD" "http://127.0.0.1:$GW$ROUTE" "${headers[@]}"
callgrind_control --instr=off "$vg_pid" >/dev/null
count=$(($(requests) - before))
bench_stop "$vg_pid"


total=$(awk '/^totals:/ { print $2 }' "$work/callgrind.out")
{
  what=tokengate
  [ "$FLOOR" = 1 ] && what="the hyper floor"
  echo "instructions per request: $((total / count)) ($total instructions, $count requests, $what, route $ROUTE, $CONNS connections)"
  echo
  echo "=== inclusive (a function and everything it calls) ==="
  callgrind_annotate --inclusive=yes --threshold=100 "$work/callgrind.out" 2>/dev/null |
    awk '/^Ir/ { on = 1 } on && n++ < 32'
  echo
  echo "=== exclusive (a function's own instructions) ==="
  callgrind_annotate --inclusive=no --threshold=100 "$work/callgrind.out" 2>/dev/null |
    awk '/^Ir/ { on = 1 } on && n++ < 32'
} | sed -E "s# \[[^]]*\]##g; s#$PWD/##g; s#$HOME/[^ ]*/(registry|rustlib)/[^ ]*/(src/)?##g; s#/rustc/[0-9a-f]+/library/#std:#g" \
  >"$work/summary"
cat "$work/summary"
[ -z "$OUT" ] || { cp "$work/summary" "$OUT"; cp "$work/callgrind.out" "$OUT.callgrind"; }
