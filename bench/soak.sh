#!/usr/bin/env bash
# Soak: DURATION seconds of mixed traffic — logins, API calls, refreshes every few
# seconds, logouts — from USERS virtual users at once, against tokengate on the embedded
# store (the default). Every TICK seconds it samples the gateway's resident memory and
# open file descriptors; at the end it prints the traffic counts (errors other than the
# intended 401 after each logout must be zero), the refresh grants the provider issued,
# and whether RSS and descriptors stayed flat after WARMUP seconds.
#
#   bench/soak.sh    env: DURATION (600), USERS (20), CALLS (40), PAUSE_MS (250),
#                         TTL (6: access-token lifetime, so refreshes come every 3 s),
#                         TICK (10), WARMUP (60)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION="${DURATION:-600}"
USERS="${USERS:-20}"
CALLS="${CALLS:-40}"
PAUSE_MS="${PAUSE_MS:-250}"
TTL="${TTL:-6}"
TICK="${TICK:-10}"
WARMUP="${WARMUP:-60}"

bench_init
UP=$(free_port) GW=$(free_port) ADMIN=$(free_port)
echo "machine: $(machine_line)"
echo "commit:  $(git rev-parse --short HEAD)"

upstream_start "$UP"
OP_ACCESS_TOKEN_TTL="$TTL" provider_start "$GW"
gateway_config "$work/gateway.toml" "$GW" "$ADMIN" "$UP"
# The embedded store, as in production on one node.
sed -i "s|^store = \"memory\"|store = \"embedded\"\npath = \"$work/sessions\"|" "$work/gateway.toml"
RUST_LOG=warn gateway_start "$work/gateway.toml"
wait_http "http://127.0.0.1:$ADMIN/readyz"

log "soak: $USERS users for ${DURATION}s"
node bench/soak.mjs "http://127.0.0.1:$GW" "$DURATION" "$USERS" "$CALLS" "$PAUSE_MS" >"$work/traffic.json" &
traffic=$!
bench_pids+=("$traffic")
: >"$work/samples"
started=$(date +%s)
while kill -0 "$traffic" 2>/dev/null; do
  printf '%s %s %s\n' "$(($(date +%s) - started))" "$(rss_kib "$gw_pid")" \
    "$(find "/proc/$gw_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)" >>"$work/samples"
  sleep "$TICK"
done
wait "$traffic"

grants="$(node -e 'fetch(process.argv[1]).then(r => r.json()).then(s => console.log(s.grants.refresh_token))' "$op_url/test/stats")"
echo "traffic: $(cat "$work/traffic.json")"
echo "refresh grants at the provider: $grants"
echo "gateway warnings and errors: $(grep -cE ' (WARN|ERROR) ' "$work/gateway.log" || true)"
grep -E ' (WARN|ERROR) ' "$work/gateway.log" | grep -v 'public_url is plain http' | head -20 || true
echo "samples (seconds, RSS KiB, open fds):"
cat "$work/samples"
awk -v warm="$WARMUP" '
  $1 >= warm { n++; if (n == 1) { r0 = $2; f0 = $3 } r = $2; f = $3; if ($2 > rmax) rmax = $2; if ($3 > fmax) fmax = $3 }
  END {
    if (n < 2) { print "too short to judge after warm-up"; exit }
    printf "after warm-up: RSS %d -> %d KiB (max %d, %+.1f%%), fds %d -> %d (max %d)\n",
      r0, r, rmax, (r - r0) * 100 / r0, f0, f, fmax
  }' "$work/samples"
