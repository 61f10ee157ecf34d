# Shared by the scripts in bench/: free ports, waiting for a server, the small nginx
# upstream, the test provider, a tokengate config, and wrk's figures.
#
# A script that sources this calls `bench_init` first: it makes a temporary directory
# ($work), stops everything started through `bench_bg` when the script exits, however it
# exits, and builds the release binary the benchmarks measure ($BIN, see release_build).

. scripts/lib.sh

# Which CPU does what on a 2-core machine: the server under test gets a core of its own,
# the load (wrk), the upstream and the provider share the other. Override with
# PROXY_CPU / LOAD_CPU (e.g. on a bigger machine).
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"

bench_init() {
  apt_install_missing curl:curl nginx:nginx wrk:wrk python3:python3
  command -v node >/dev/null || { echo "Node.js is required (the test provider runs on it)" >&2; exit 1; }
  ensure_op_deps
  work="$(mktemp -d)"
  bench_pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  # The profiling scripts run their own build (hot_path_setup) and skip this one.
  [ "${1:-}" = --no-release-build ] || release_build
}

# release_build — the release binary the benchmarks measure; sets $BIN, and $BUILD to
# say which it is. PGO=1 (the default): the profile-guided build of scripts/build-release
# (pgo_build). PGO=0: the plain release build.
release_build() {
  if [ "${PGO:-1}" = 0 ]; then
    log "building tokengate (release, no profile)"
    cargo build --release --quiet
    BIN="$CARGO_TARGET_DIR/release/tokengate"
    BUILD="release"
  else
    pgo_build
  fi
}

# pgo_build — tokengate built twice: instrumented, then run on the hot path (pgo_train),
# then optimised with the counts that run left (branch layout and inlining follow what a
# proxied request really does). The profile is made again only when the instrumented
# binary changed. Sets $BIN. Both builds keep target directories of their own under
# $CARGO_TARGET_DIR/pgo, so the plain release build's cache stays valid.
pgo_build() {
  local dir="$CARGO_TARGET_DIR/pgo" gen stamp
  llvm_tools
  log "building tokengate instrumented for a profile (release)"
  # Build scripts run instrumented too and leave their counts in scratch/; only the
  # training run's, under raw/, make the profile.
  RUSTFLAGS="-Cprofile-generate=$dir/scratch" \
    cargo build --release --quiet --target-dir "$dir/instrumented"
  gen="$dir/instrumented/release/tokengate"
  stamp="$(sha256sum "$gen" | cut -d' ' -f1)"
  if [ ! -s "$dir/profile.profdata" ] || [ "$(cat "$dir/profile.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$dir/raw"
    pgo_train "$gen" "$dir/raw"
    "$LLVM_TOOLS/llvm-profdata" merge -o "$dir/profile.profdata" "$dir/raw"
    echo "$stamp" >"$dir/profile.stamp"
  fi
  log "building tokengate with the profile (release)"
  RUSTFLAGS="-Cprofile-use=$dir/profile.profdata" \
    cargo build --release --quiet --target-dir "$dir/optimised"
  BIN="$dir/optimised/release/tokengate"
  BUILD="release, profile-guided"
}

# llvm_tools — the rustup component whose llvm-profdata merges profiles, added when
# missing; sets $LLVM_TOOLS to its directory.
llvm_tools() {
  local host
  host="$(rustc -vV | sed -n 's/^host: //p')"
  LLVM_TOOLS="$(rustc --print sysroot)/lib/rustlib/$host/bin"
  if [ ! -x "$LLVM_TOOLS/llvm-profdata" ]; then
    log "installing llvm-tools (rustup), for llvm-profdata"
    rustup component add llvm-tools
  fi
}

# pgo_train BIN RAW_DIR — the run the profile is made of: BIN (instrumented) in front of
# the small upstream, on PROXY_CPU as in the benchmarks; 20 logins through the provider's
# form, then wrk on the `token = "user"` route (64 and 16 connections), the
# `token = "none"` route and /bff/user. Stopped by SIGTERM, BIN writes its counts under
# RAW_DIR. Everything it starts is stopped before it returns.
pgo_train() {
  local BIN="$1" raw="$2" up gw admin started=() url pid
  up=$(free_port) gw=$(free_port) admin=$(free_port)
  log "running the instrumented build on the hot path (about 30 s)"
  upstream_start "$up" pgo-upstream
  started+=("$last_pid")
  OP_ACCESS_TOKEN_TTL=7200 provider_start "$gw"
  started+=("$last_pid")
  gateway_config "$work/pgo.toml" "$gw" "$admin" "$up"
  LLVM_PROFILE_FILE="$raw/%p-%m.profraw" gateway_start "$work/pgo.toml"
  wait_http "http://127.0.0.1:$admin/readyz"
  node bench/login.mjs "http://127.0.0.1:$gw" 20 >/dev/null
  login_once "$gw" /api/items
  url="http://127.0.0.1:$gw"
  wrk_run "$work/pgo.wrk" 64 10 "$url/api/items" "${headers[@]}"
  wrk_run "$work/pgo.wrk" 16 4 "$url/api/items" "${headers[@]}"
  wrk_run "$work/pgo.wrk" 64 6 "$url/items" "${headers[@]}"
  wrk_run "$work/pgo.wrk" 16 2 "$url/bff/user" "${headers[@]}"
  bench_stop "$gw_pid"
  for pid in "${started[@]}"; do bench_stop "$pid"; done
  ls "$raw"/*.profraw >/dev/null 2>&1 || { echo "the instrumented run left no profile in $raw" >&2; exit 1; }
}

bench_cleanup() {
  trap - EXIT
  [ ${#bench_pids[@]} -gt 0 ] && kill "${bench_pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}

# bench_bg CMD... — runs CMD in the background, to be stopped at exit; sets $last_pid.
bench_bg() {
  "$@" &
  last_pid=$!
  bench_pids+=("$last_pid")
}

# bench_stop PID — stops one process started with bench_bg and waits for it.
bench_stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # wait_http URL — until it answers 2xx, up to 30 s
  local _
  for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "nothing answered at $1" >&2
  exit 1
}

# A small JSON API: nginx answering every request with 200 and a fixed body, one worker
# on LOAD_CPU, from its own config in $work (never the system's nginx service).
UPSTREAM_BODY='{"id":42,"name":"widget","tags":["small","json"],"ok":true}'

# nginx_start NAME CONFIG_BODY CPU — an nginx of its own under $work/NAME, pinned to CPU.
nginx_start() {
  local dir="$work/$1"
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  $2
}
CONF
  bench_bg taskset -c "$3" nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
}

upstream_start() { # upstream_start PORT [NAME] — NAME: its directory under $work
  nginx_start "${2:-upstream}" "server {
    listen 127.0.0.1:$1;
    location / { default_type application/json; return 200 '$UPSTREAM_BODY'; }
    # The Authorization a request arrived with, for a benchmark to learn the bearer a
    # proxy in front adds (bench/proxy.sh).
    location = /api/echo-authorization { default_type text/plain; return 200 \$http_authorization; }
  }" "$LOAD_CPU"
  wait_http "http://127.0.0.1:$1/"
}

# provider_start GATEWAY_PORT — the test provider for a gateway on GATEWAY_PORT, pinned
# to LOAD_CPU; sets $issuer and $op_url. OP_ACCESS_TOKEN_TTL passes through.
provider_start() {
  local out="$work/provider.out" _
  OP_REDIRECT_URIS="http://127.0.0.1:$1/bff/callback" OP_POST_LOGOUT_REDIRECT_URIS="http://127.0.0.1:$1/" \
    bench_bg taskset -c "$LOAD_CPU" node tests/op/server.mjs >"$out" 2>"$work/provider.log"
  for _ in $(seq 1 300); do grep -q '"ready":true' "$out" 2>/dev/null && break; sleep 0.1; done
  issuer="$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' "$out")"
  [ -n "$issuer" ] || { echo "the test provider did not start:" >&2; cat "$work/provider.log" >&2; exit 1; }
  op_url="$issuer"
}

# gateway_config FILE GATEWAY_PORT ADMIN_PORT UPSTREAM_PORT [REFRESH_BEFORE_EXPIRY] — a
# memory-store config: /api a `token = "user"` route, everything else `token = "none"`,
# both to the same upstream.
gateway_config() {
  cat >"$1" <<TOML
[server]
listen = "127.0.0.1:$2"
public_url = "http://127.0.0.1:$2"
admin_listen = "127.0.0.1:$3"
[oidc]
issuer = "$issuer"
client_id = "gateway"
client_secret = "gateway-secret"
auth_params = { prompt = "consent" }
[session]
keys = ["$("$BIN" keygen)"]
store = "memory"
[tokens]
refresh_before_expiry = "${5:-60s}"
[[route]]
path = "/api"
upstream = "http://127.0.0.1:$4"
token = "user"
[[route]]
path = "/"
upstream = "http://127.0.0.1:$4"
token = "none"
TOML
}

# gateway_start CONFIG [WRAPPER...] — tokengate ($BIN) on PROXY_CPU with one tokio worker
# thread (the same one core nginx gets), run under WRAPPER if given (e.g. valgrind); sets
# $gw_pid.
gateway_start() {
  local config="$1"
  shift
  RUST_LOG="${RUST_LOG:-info}" TOKIO_WORKER_THREADS=1 \
    bench_bg taskset -c "$PROXY_CPU" "$@" "$BIN" run --config "$config" >>"$work/gateway.log" 2>&1
  gw_pid=$last_pid
}

# hot_path_setup ROUTE [WRAPPER...] — the scene of the profiling scripts: the profiling
# build of tokengate (under WRAPPER if given) in front of the small upstream, the provider
# issuing 2-hour access tokens (no refresh while profiling), logged in once and checked on
# ROUTE. Sets $GW, $ADMIN, $gw_pid and $headers.
hot_path_setup() {
  local route="$1" UP
  shift
  profiling_build
  UP=$(free_port) GW=$(free_port) ADMIN=$(free_port)
  upstream_start "$UP"
  OP_ACCESS_TOKEN_TTL=7200 provider_start "$GW"
  BIN="$PROF_BIN" gateway_config "$work/gateway.toml" "$GW" "$ADMIN" "$UP"
  BIN="$PROF_BIN" gateway_start "$work/gateway.toml" "$@"
  wait_http "http://127.0.0.1:$ADMIN/readyz"
  login_once "$GW" "$route"
}

# profiling_build — tokengate with line tables (profile "profiling": release plus debug
# line info), so that profilers can name functions and lines; sets $PROF_BIN.
profiling_build() {
  log "building tokengate with line tables (profile \"profiling\")"
  cargo build --quiet --profile profiling \
    --config 'profile.profiling.inherits="release"' --config 'profile.profiling.debug="line-tables-only"'
  PROF_BIN="$CARGO_TARGET_DIR/profiling/tokengate"
}

# login_once GATEWAY_PORT PATH — logs in once through the provider's form (bench/login.mjs)
# and checks that PATH answers 200 with the session; sets $headers (the cookie and
# `X-CSRF: 1`, as curl/wrk arguments).
login_once() {
  local cookie status
  cookie="$(node bench/login.mjs "http://127.0.0.1:$1" 1)"
  headers=(-H "Cookie: tokengate=$cookie" -H "X-CSRF: 1")
  status="$(curl -s -o /dev/null -w '%{http_code}' "${headers[@]}" "http://127.0.0.1:$1$2")"
  [ "$status" = 200 ] || { echo "$2 answered $status with the session, not 200" >&2; exit 1; }
}

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

# wrk_run OUT CONNS SECONDS URL [wrk args...] — wrk on LOAD_CPU, one thread, latency
# distribution on; its output goes to OUT.
wrk_run() {
  local out="$1" conns="$2" secs="$3" url="$4"
  shift 4
  taskset -c "$LOAD_CPU" wrk -t1 -c "$conns" -d "${secs}s" --timeout 10s --latency "$@" "$url" >"$out"
}

# wrk_figures OUT — "requests/s p50_ms p99_ms failed" from wrk's output (failed: non-2xx
# answers plus socket errors).
wrk_figures() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { failed += $NF }
    /Socket errors:/ { gsub(",", ""); failed += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, failed }
  ' "$1"
}

# machine_line — CPU model, cores and load, for the record.
machine_line() {
  printf '%s, %s cores; load average %s\n' \
    "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
}
