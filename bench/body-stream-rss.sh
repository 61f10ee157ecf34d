#!/usr/bin/env bash
# Memory while streaming a large request body through tokengate.
#
# Starts a byte-counting sink upstream (Node.js) and tokengate with one `token = "none"`
# route to it, sends SIZE_MIB MiB through the gateway with curl, and prints the
# gateway's resident memory before and its peak (VmHWM) after, plus the bytes the sink
# counted. Everything binds to loopback on free ports and is stopped at the end.
#
#   bench/body-stream-rss.sh [SIZE_MIB]     (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
SIZE_MIB="${1:-50}"

cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/tokengate"
work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SINK=$(free_port) GW=$(free_port) ADMIN=$(free_port)

node -e '
  const http = require("http");
  http.createServer((req, res) => {
    let n = 0;
    req.on("data", (c) => { n += c.length; });
    req.on("end", () => { res.end(JSON.stringify({ body_bytes: n })); });
  }).listen(Number(process.argv[1]), "127.0.0.1");
' "$SINK" &
pids+=($!)
wait_http() { # wait_http URL — up to 10 s
  local _
  for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "nothing answered at $1" >&2; exit 1
}
wait_http "http://127.0.0.1:$SINK/"

cat > "$work/bench.toml" <<TOML
[server]
listen = "127.0.0.1:$GW"
public_url = "http://127.0.0.1:$GW"
admin_listen = "127.0.0.1:$ADMIN"
[oidc]
issuer = "http://127.0.0.1:1"
client_id = "bench"
client_secret = "bench"
[session]
keys = ["$("$BIN" keygen)"]
store = "memory"
[[route]]
path = "/"
upstream = "http://127.0.0.1:$SINK"
token = "none"
TOML
RUST_LOG=${RUST_LOG:-error} "$BIN" run --config "$work/bench.toml" &
gw_pid=$!
pids+=($gw_pid)
wait_http "http://127.0.0.1:$ADMIN/healthz"

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$gw_pid/status"; }
before=$(kib VmRSS)
answer=$(head -c "$((SIZE_MIB * 1024 * 1024))" /dev/zero |
  curl -sS --fail-with-body -X POST -H 'content-type: application/octet-stream' -T - "http://127.0.0.1:$GW/upload")
peak=$(kib VmHWM)
echo "body:            $SIZE_MIB MiB"
echo "sink counted:    $answer"
echo "RSS before:      $((before / 1024)) MiB ($before KiB)"
echo "peak RSS after:  $((peak / 1024)) MiB ($peak KiB)"
echo "growth:          $(((peak - before) / 1024)) MiB"
