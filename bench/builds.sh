#!/usr/bin/env bash
# Two builds of tokengate side by side, beside nginx, in one run: whether a change makes
# the proxied API call faster, measured where the machine's moods hit both alike.
#
#   this    this tree's release build (as bench/proxy.sh builds it);
#   other   OTHER_BINARY, another build (another commit's, or this one built otherwise);
#   nginx   nginx as a plain reverse proxy with upstream keep-alive, for scale;
# each serving bench/proxy.sh's tg-user target — a `token = "user"` route, every request
# with its own gateway's session cookie and `X-CSRF: 1`, the session cached and its
# bearer added (each gateway logged in once through the test provider's form) — against
# the same small upstream, at CONNS connections, for DURATION seconds, ROUNDS times, the
# rounds interleaving the targets and each starting one further on. It prints
# requests/s, p50 and p99 (median of the rounds), each one's requests/s over nginx's,
# and the CPU time (user and system, from /proc) each process spent per request, with
# `this`'s difference from `other`'s; then each gateway's RSS after the load.
#
# Another commit's binary, for example:
#   git worktree add ../base REV && (cd ../base && cargo build --release)
#   bench/builds.sh ../base/target/release/tokengate
# (with CARGO_TARGET_DIR set, the binary is under it instead).
#
#   bench/builds.sh OTHER_BINARY   env: MODE (auto), DURATION (10), ROUNDS (5), CONNS (64)
set -euo pipefail
cd "$(dirname "$0")/.."
OTHER="${1:?usage: bench/builds.sh OTHER_BINARY}"
OTHER="$(realpath "$OTHER")"
[ -x "$OTHER" ] || { echo "$OTHER is not an executable" >&2; exit 1; }
MODE="${MODE:-auto}"
. bench/lib.sh
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-5}"
CONNS="${CONNS:-64}"

bench_init
UP=$(free_port) NGX=$(free_port)
echo "machine: $(machine_line)"
echo "this:    $(git rev-parse --short HEAD) (and the working tree); build: $BUILD"
echo "other:   $OTHER"

upstream_start "$UP"
nginx_proxy proxy "$NGX" "$UP"
declare -A server_pid=([nginx]=$last_pid) url=([nginx]="http://127.0.0.1:$NGX/api/items") cookie

declare -A binary=([this]="$BIN" [other]="$OTHER") port admin
for t in this other; do port[$t]=$(free_port) admin[$t]=$(free_port); done
# An access token that outlives the run: the steady state, no refresh on the way.
OP_ACCESS_TOKEN_TTL=7200 provider_start "${port[this]}" "${port[other]}"
for t in this other; do
  gateway_config "$work/$t.toml" "${port[$t]}" "${admin[$t]}" "$UP"
  RUST_LOG=info bench_bg $(placed "$PROXY_CPU") "${binary[$t]}" run --config "$work/$t.toml" >>"$work/$t.log" 2>&1
  server_pid[$t]=$last_pid
  wait_http "http://127.0.0.1:${admin[$t]}/readyz"
  log "logging in once through $t's gateway"
  login_once "${port[$t]}" /api/items
  cookie[$t]="${headers[1]}"
  url[$t]="http://127.0.0.1:${port[$t]}/api/items"
done
# nginx gets one of the cookies: every target carries the same headers.
cookie[nginx]="${cookie[this]}"
targets=(nginx this other)

# measure TARGET CONNS — wrk on TARGET: its figures, then the requests it completed.
measure() {
  wrk_run "$work/wrk.out" "$2" "$DURATION" "${url[$1]}" -H "${cookie[$1]}" -H "X-CSRF: 1"
  echo "$(wrk_figures "$work/wrk.out") $(awk '/ requests in / { print $1 }' "$work/wrk.out")"
}

log "warming up (2 s per target)"
for t in "${targets[@]}"; do
  wrk_run "$work/wrk.out" 64 2 "${url[$t]}" -H "${cookie[$t]}" -H "X-CSRF: 1"
done
interleaved_rounds measure "requests/s p50 p99 failed"
results="$work/results"

echo
echo "machine after the run: $(machine_line)"
echo "median of $ROUNDS rounds of ${DURATION} s; $(mode_line)"
awk -v conns="$CONNS" "$AWK_MEDIAN$AWK_ROUNDS"'
  END {
    printf "%-6s %-6s %11s %9s %9s %7s %9s %12s %12s\n", "conns", "target", "requests/s", "p50 ms", "p99 ms", "failed", "vs nginx", "CPU us/req", "CPU vs other"
    n = split(conns, cs, " ")
    nt = split("nginx this other", ts, " ")
    for (i = 1; i <= n; i++) {
      limit = median(rps["nginx" SUBSEP cs[i]]); other_cpu = median(cpu["other" SUBSEP cs[i]])
      for (j = 1; j <= nt; j++) {
        k = ts[j] SUBSEP cs[i]
        r = median(rps[k]); c = median(cpu[k])
        vs = ts[j] == "nginx" ? "" : sprintf("%.3f", r / limit)
        diff = ts[j] == "this" ? sprintf("%+.1f%%", (c / other_cpu - 1) * 100) : ""
        printf "%-6s %-6s %11.0f %9.3f %9.3f %7d %9s %12.2f %12s\n", cs[i], ts[j], r, median(p50[k]), median(p99[k]), failed[k], vs, c, diff
      }
    }
  }' "$results"
echo
for t in this other; do
  echo "$t: RSS after the load $(rss_kib "${server_pid[$t]}") KiB"
done
if awk '$7 > 0 { bad = 1 } END { exit !bad }' "$results"; then
  echo "some requests failed (see the failed column)" >&2
  exit 1
fi
