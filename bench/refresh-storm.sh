#!/usr/bin/env bash
# Refresh storm: SESSIONS sessions whose access tokens all fall due at once, hit
# concurrently.
#
# The test provider issues access tokens that live TTL seconds; tokengate refreshes them
# TTL/2 before expiry. SESSIONS logins go through the provider's form (PARALLEL at a time);
# once the last one's token is due, bench/storm.mjs sends PER_SESSION requests for each
# session — the requests of one session back to back, so they arrive together over CONNS
# connections and must share one refresh. The
# provider counts the refresh grants it issued: exactly one per session is the target,
# with no request failing. Prints grants, requests/s and p50/p99 over the storm.
#
# CPUs as in `MODE=pinned bench/proxy.sh`: tokengate (one worker) on PROXY_CPU; the load,
# the upstream and the provider on LOAD_CPU.
#
#   bench/refresh-storm.sh   env: SESSIONS (1000), PER_SESSION (4), CONNS (64),
#                                 PARALLEL (16), TTL (30)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SESSIONS="${SESSIONS:-1000}"
PER_SESSION="${PER_SESSION:-4}"
CONNS="${CONNS:-64}"
PARALLEL="${PARALLEL:-16}"
TTL="${TTL:-30}"

bench_init
UP=$(free_port) GW=$(free_port) ADMIN=$(free_port)
echo "machine: $(machine_line)"

upstream_start "$UP"
OP_ACCESS_TOKEN_TTL="$TTL" provider_start "$GW"
gateway_config "$work/gateway.toml" "$GW" "$ADMIN" "$UP" "$((TTL / 2))s"
gateway_start "$work/gateway.toml"
wait_http "http://127.0.0.1:$ADMIN/readyz"

log "logging in $SESSIONS sessions, $PARALLEL at a time"
started=$(date +%s)
timeout 600 node bench/login.mjs "http://127.0.0.1:$GW" "$SESSIONS" "$PARALLEL" >"$work/cookies"
last_login=$(date +%s)
[ "$(wc -l <"$work/cookies")" -eq "$SESSIONS" ] || { echo "not every login succeeded" >&2; exit 1; }
log "$SESSIONS logins in $((last_login - started)) s"

grants() { node -e 'fetch(process.argv[1]).then(r => r.json()).then(s => console.log(s.grants.refresh_token))' "$op_url/test/stats"; }
before=$(grants)

# Every token is due TTL/2 after its login; wait for the last one (and a second of margin).
due=$((last_login + TTL / 2 + 1))
now=$(date +%s)
if [ "$now" -lt "$due" ]; then
  log "waiting $((due - now)) s for the last session's token to fall due"
  sleep $((due - now))
fi

log "storm: $((SESSIONS * PER_SESSION)) requests over $CONNS connections"
storm="$(timeout 300 taskset -c "$LOAD_CPU" node bench/storm.mjs "http://127.0.0.1:$GW/api/items" "$PER_SESSION" "$CONNS" <"$work/cookies")"
after=$(grants)
field() { node -e 'console.log(JSON.parse(process.argv[1])[process.argv[2]])' "$storm" "$1"; }
failed=$(field failed)

echo
echo "machine after the run: $(machine_line)"
echo "sessions:               $SESSIONS (logged in in $((last_login - started)) s, $PARALLEL at a time)"
echo "requests:               $(field requests) in $(field seconds) s over $CONNS connections ($PER_SESSION per session)"
echo "refresh grants issued:  $((after - before)) (target: $SESSIONS)"
echo "failed requests:        $failed"
echo "throughput:             $(field rps) requests/s"
echo "latency:                p50 $(field p50_ms) ms, p99 $(field p99_ms) ms"
[ $((after - before)) -eq "$SESSIONS" ] && [ "$failed" -eq 0 ] || { echo "target missed" >&2; exit 1; }
