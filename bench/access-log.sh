#!/usr/bin/env bash
# What the access log (`[log] access = true`) costs: bench/proxy.sh's tg-user target — a
# `token = "user"` route, every request with the session cookie and `X-CSRF: 1`, the
# session found in the cache and its bearer added — through three tokengate processes
# side by side, the same binary on the same upstream and provider:
#   off    no access log (the default);
#   text   `[log] access = true`, text lines;
#   json   `[log] access = true` with TOKENGATE_LOG_FORMAT=json.
# Each writes its standard output to a file of its own on the machine's disk, as an
# operator redirecting the log would (`tokengate run … >>tokengate.log`); the files are
# emptied between measurements so that a long run does not fill the disk. Rounds
# interleave the targets as bench/proxy.sh's do, each round starting one further on. It
# prints requests/s, p50 and p99 (median of the rounds), requests/s over `off`'s, and the
# CPU time (user and system, from /proc) the gateway process spent per request, with its
# difference from `off`'s; then the size of one access line.
#
#   bench/access-log.sh   env: MODE (auto), DURATION (10), ROUNDS (5), CONNS ("16 64")
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${MODE:-auto}"
. bench/lib.sh
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-5}"
CONNS="${CONNS:-16 64}"

bench_init
UP=$(free_port)
echo "machine: $(machine_line)"
echo "commit:  $(git rev-parse --short HEAD) (and the working tree); build: $BUILD"

upstream_start "$UP"
# An access token that outlives the run: the steady state, no refresh on the way.
declare -A port admin
targets=(off text json)
for t in "${targets[@]}"; do port[$t]=$(free_port) admin[$t]=$(free_port); done
OP_ACCESS_TOKEN_TTL=7200 provider_start "${port[off]}" "${port[text]}" "${port[json]}"

declare -A server_pid cookie url
for t in "${targets[@]}"; do
  access=1
  [ "$t" = off ] && access=0
  GW_ACCESS_LOG=$access gateway_config "$work/$t.toml" "${port[$t]}" "${admin[$t]}" "$UP"
  format=text
  [ "$t" = json ] && format=json
  # gateway_start appends to $work/gateway.log: each target gets a log of its own.
  RUST_LOG=info TOKENGATE_LOG_FORMAT=$format \
    bench_bg $(placed "$PROXY_CPU") "$BIN" run --config "$work/$t.toml" >>"$work/$t.log" 2>&1
  server_pid[$t]=$last_pid
  wait_http "http://127.0.0.1:${admin[$t]}/readyz"
  log "logging in once through $t's gateway"
  login_once "${port[$t]}" /api/items
  cookie[$t]="${headers[1]}"
  url[$t]="http://127.0.0.1:${port[$t]}/api/items"
done

# measure TARGET CONNS — wrk on TARGET: its figures, then the requests it completed.
measure() {
  wrk_run "$work/wrk.out" "$2" "$DURATION" "${url[$1]}" -H "${cookie[$1]}" -H "X-CSRF: 1"
  : >"$work/$1.log"
  echo "$(wrk_figures "$work/wrk.out") $(awk '/ requests in / { print $1 }' "$work/wrk.out")"
}

log "warming up (2 s per target)"
for t in "${targets[@]}"; do
  wrk_run "$work/wrk.out" 64 2 "${url[$t]}" -H "${cookie[$t]}" -H "X-CSRF: 1"
done
# One line of each format, for the record (the last request of the warm-up).
text_line="$(grep -a 'tokengate::access' "$work/text.log" | tail -n 1)"
json_line="$(grep -a '"tokengate::access"' "$work/json.log" | tail -n 1)"
[ -n "$text_line" ] && [ -n "$json_line" ] || { echo "no access line was written" >&2; exit 1; }
[ -z "$(grep -a 'tokengate::access' "$work/off.log" || true)" ] || { echo "off wrote access lines" >&2; exit 1; }
: >"$work/text.log"
: >"$work/json.log"

interleaved_rounds measure "requests/s p50 p99 failed"
results="$work/results"

echo
echo "machine after the run: $(machine_line)"
echo "median of $ROUNDS rounds of ${DURATION} s; $(mode_line); logs to files in $work ($(df --output=source "$work" | tail -n 1))"
awk -v conns="$CONNS" "$AWK_MEDIAN$AWK_ROUNDS"'
  END {
    printf "%-6s %-6s %11s %9s %9s %7s %8s %12s %10s\n", "conns", "target", "requests/s", "p50 ms", "p99 ms", "failed", "vs off", "CPU us/req", "CPU vs off"
    n = split(conns, cs, " ")
    nt = split("off text json", ts, " ")
    for (i = 1; i <= n; i++) {
      base = median(rps["off" SUBSEP cs[i]]); base_cpu = median(cpu["off" SUBSEP cs[i]])
      for (j = 1; j <= nt; j++) {
        k = ts[j] SUBSEP cs[i]
        r = median(rps[k]); c = median(cpu[k])
        printf "%-6s %-6s %11.0f %9.3f %9.3f %7d %8.3f %12.2f %+9.1f%%\n", cs[i], ts[j], r, median(p50[k]), median(p99[k]), failed[k], r / base, c, (c / base_cpu - 1) * 100
      }
    }
  }' "$results"
echo
echo "a text line (${#text_line} bytes):"
echo "$text_line"
echo "a JSON line (${#json_line} bytes):"
echo "$json_line"
if awk '$7 > 0 { bad = 1 } END { exit !bad }' "$results"; then
  echo "some requests failed (see the failed column)" >&2
  exit 1
fi
