#!/usr/bin/env bash
# A flame graph of tokengate's CPU time on the hot path — `token = "user"` requests whose
# session is cached, over CONNS keep-alive connections — kernel included.
#
# The release build with line tables (profile "profiling") runs natively on its own core,
# as in `MODE=pinned bench/proxy.sh`; it is logged in once through the test provider and warmed up, then
# `perf record` samples it (cpu-clock: a VM may have no hardware counters; call stacks
# unwound from DWARF) while wrk loads it for SECONDS_UNDER_LOAD. inferno (a cargo crate,
# installed on first use under the cache directory) folds the stacks and draws the SVG.
#
#   bench/flamegraph.sh [OUT.svg]   env: SECONDS_UNDER_LOAD (8), CONNS (64), ROUTE (/api/items)
#
# Prints where the samples fall (kernel, tokengate's binary, libc), the TOP (20) functions
# by samples of their own, and writes the SVG to OUT.svg (default
# flamegraph-user-route.svg in the cargo target directory).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
OUT="${1:-$CARGO_TARGET_DIR/flamegraph-user-route.svg}"
SECONDS_UNDER_LOAD="${SECONDS_UNDER_LOAD:-8}"
CONNS="${CONNS:-64}"
ROUTE="${ROUTE:-/api/items}"

apt_install_missing perf:linux-perf
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/tokengate/tools"
if [ ! -x "$TOOLS/bin/inferno-flamegraph" ]; then
  log "installing inferno (flame graphs) under $TOOLS"
  cargo install --quiet --locked --root "$TOOLS" inferno
fi
bench_init --no-release-build
hot_path_setup "$ROUTE"

log "warming up"
wrk_run "$work/wrk.out" "$CONNS" 3 "http://127.0.0.1:$GW$ROUTE" "${headers[@]}"
log "sampling for $SECONDS_UNDER_LOAD s under $CONNS connections"
wrk_run "$work/wrk.out" "$CONNS" $((SECONDS_UNDER_LOAD + 2)) "http://127.0.0.1:$GW$ROUTE" "${headers[@]}" &
load=$!
sleep 1 # let wrk open its connections before sampling starts
perf record --quiet -e cpu-clock -F 997 --call-graph dwarf,16384 -p "$gw_pid" \
  -o "$work/perf.data" -- sleep "$SECONDS_UNDER_LOAD" 2>"$work/perf.log" ||
  { cat "$work/perf.log" >&2; exit 1; }
wait "$load"
echo "load: $(wrk_figures "$work/wrk.out" | awk '{ printf "%s req/s, p50 %s ms, p99 %s ms, %s failed", $1, $2, $3, $4 }')"

echo "where the samples fall:"
perf report --quiet -i "$work/perf.data" --no-children --sort dso 2>/dev/null |
  awk 'NF >= 2 && $1 ~ /%$/ && n++ < 8 { printf "  %7s  %s\n", $1, $2 }'
echo "the functions with the most samples of their own:"
perf report --quiet -i "$work/perf.data" --no-children --sort sym 2>/dev/null |
  awk -v top="${TOP:-20}" 'NF >= 2 && $1 ~ /%$/ && n++ < top { print substr($0, 1, 150) }'
perf script -i "$work/perf.data" 2>/dev/null |
  "$TOOLS/bin/inferno-collapse-perf" --all >"$work/folded"
"$TOOLS/bin/inferno-flamegraph" --width 1600 --minwidth 0.2 \
  --title "tokengate, token = \"user\" route, $CONNS connections ($(git rev-parse --short HEAD))" \
  <"$work/folded" >"$OUT"
echo "flame graph: $OUT ($(wc -l <"$work/folded") distinct stacks)"
