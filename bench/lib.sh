# Shared by the scripts in bench/: free ports, waiting for a server, the small nginx
# upstream, the test provider, a tokengate config, and wrk's figures.
#
# A script that sources this calls `bench_init` first: it makes a temporary directory
# ($work), stops everything started through `bench_bg` when the script exits, however it
# exits, and builds the release binary the benchmarks measure ($BIN, see release_build).

. scripts/lib.sh

# MODE — where the processes run and how many workers each server gets.
#   auto    what a user gets: nothing pinned, every server at its default worker count —
#           nginx with `worker_processes auto` (the proxies under test and the small
#           upstream alike: an upstream held to one worker would be the limit of every
#           target at once), tokengate without `server.workers` (one worker per core,
#           its default), wrk with one thread per core (never
#           more threads than connections), all on the same machine.
#   pinned  the one-core comparison: the server under test alone on PROXY_CPU — nginx
#           with `worker_processes 1`, tokengate with one worker — and the load (wrk, one
#           thread), the upstream (one worker) and the provider sharing LOAD_CPU.
# bench/proxy.sh, bench/h2.sh and bench/store-miss.sh set auto before sourcing this; a
# script that sets nothing runs pinned, as it was written for (bench/hyper-floor.sh
# samples PROXY_CPU alone with perf).
MODE="${MODE:-pinned}"
case "$MODE" in
  auto | pinned) ;;
  *) echo "MODE must be auto or pinned, not '$MODE'" >&2; exit 2 ;;
esac

# Which CPU does what in pinned mode on a 2-core machine: the server under test gets a
# core of its own, the load (wrk), the upstream and the provider share the other.
# Override with PROXY_CPU / LOAD_CPU (e.g. on a bigger machine).
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"

# placed CPU — the words that start a command on CPU: `taskset -c CPU` in pinned mode;
# in auto mode `env`, which only runs the command (it execs it, so a background job's
# PID is the command's own).
placed() {
  if [ "$MODE" = pinned ]; then echo "taskset -c $1"; else echo env; fi
}

# mode_line [LOAD_GENERATOR] — how the processes ran, for a report (the load generator
# is wrk unless named).
mode_line() {
  local load="${1:-wrk}"
  if [ "$MODE" = pinned ]; then
    echo "pinned: proxies on CPU $PROXY_CPU (one worker each), $load (-t1) + upstream + provider on CPU $LOAD_CPU"
  else
    echo "unpinned, default worker counts (nginx worker_processes auto, tokengate its own); $load -t$(nproc) (fewer at fewer connections) on the same machine"
  fi
}

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
# say which it is. PGO=0 (the default): the plain `cargo build --release`, what a user
# builds. PGO=1: the profile-guided build of `PGO=1 scripts/build-release` (pgo_build).
release_build() {
  if [ "${PGO:-0}" = 0 ]; then
    log "building tokengate (release)"
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
# the small upstream, pinned to PROXY_CPU whatever MODE the caller runs in, so that one
# binary always gets the same profile (pgo_build keeps it while the binary is the same);
# 20 logins through the provider's form, then wrk on the `token = "user"` route (64 and
# 16 connections), the `token = "none"` route and /bff/user. Stopped by SIGTERM, BIN
# writes its counts under RAW_DIR. Everything it starts is stopped before it returns.
pgo_train() {
  local BIN="$1" raw="$2" up gw admin started=() url pid MODE=pinned
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

# A small JSON API: nginx answering every request with 200 and a fixed body (one worker
# on LOAD_CPU when pinned), from its own config in $work (never the system's nginx
# service).
UPSTREAM_BODY='{"id":42,"name":"widget","tags":["small","json"],"ok":true}'

# nginx_start NAME CONFIG_BODY CPU — an nginx of its own under $work/NAME: pinned, one
# worker on CPU; in auto mode `worker_processes auto` (one per core), anywhere.
nginx_start() {
  local dir="$work/$1" workers=auto
  [ "$MODE" = pinned ] && workers=1
  # Started as root, nginx runs its workers as nobody, and they write request bodies
  # larger than client_body_buffer_size (16 KiB) to files under $dir/body: they must
  # be able to pass through $work, which mktemp made for its owner alone. Each such body
  # is also a warning in the error log; the log keeps nginx's default level, `error`, so
  # that it does not cost a write per request.
  chmod 711 "$work"
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/logs/error.log error;
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
  bench_bg $(placed "$3") nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf"
}

# The proxying every nginx target does: to upstream `api`, HTTP/1.1 keep-alive, with the
# forwarding headers tokengate sets too.
NGINX_PROXY_PASS='proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;'

# nginx_proxy NAME PORT UPSTREAM_PORT [DIRECTIVE] — nginx as a plain reverse proxy with
# upstream keep-alive to the upstream on UPSTREAM_PORT (on PROXY_CPU when pinned), with one
# more directive in its location; waits until it answers. Sets $last_pid.
nginx_proxy() {
  nginx_start "$1" "upstream api { server 127.0.0.1:$3; keepalive 128; }
  server {
    listen 127.0.0.1:$2;
    location / {
      $NGINX_PROXY_PASS
      ${4:-}
    }
  }" "$PROXY_CPU"
  wait_http "http://127.0.0.1:$2/"
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

# provider_start GATEWAY... — the test provider (on LOAD_CPU when pinned) for the
# gateways named, each by its port (public URL http://127.0.0.1:PORT) or by its public
# URL (e.g. https://…); sets $issuer and $op_url. OP_ACCESS_TOKEN_TTL passes through.
provider_start() {
  local out="$work/provider.out" _ gw redirects=() logouts=()
  for gw in "$@"; do
    case "$gw" in *://*) ;; *) gw="http://127.0.0.1:$gw" ;; esac
    redirects+=("$gw/bff/callback")
    logouts+=("$gw/")
  done
  OP_REDIRECT_URIS="$(IFS=,; echo "${redirects[*]}")" OP_POST_LOGOUT_REDIRECT_URIS="$(IFS=,; echo "${logouts[*]}")" \
    bench_bg $(placed "$LOAD_CPU") node tests/op/server.mjs >"$out" 2>"$work/provider.log"
  for _ in $(seq 1 300); do grep -q '"ready":true' "$out" 2>/dev/null && break; sleep 0.1; done
  issuer="$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' "$out")"
  [ -n "$issuer" ] || { echo "the test provider did not start:" >&2; cat "$work/provider.log" >&2; exit 1; }
  op_url="$issuer"
}

# gateway_config FILE GATEWAY_PORT ADMIN_PORT UPSTREAM_PORT [REFRESH_BEFORE_EXPIRY] — a
# memory-store config: /api a `token = "user"` route, everything else `token = "none"`,
# both to the same upstream. Pinned, it asks for one worker (`server.workers`); in auto
# mode it leaves the count to tokengate. Optional environment:
#   GW_TLS_CERT, GW_TLS_KEY  serve TLS with these PEM files; the public URL is https
#   GW_SESSION               the [session] lines in place of `store = "memory"`
#   GW_KEY                   the session key (default: a fresh one), for two configs
#                            that read the same stored sessions
#   GW_ACCESS_LOG            1: the access log on (`[log] access = true`); its lines go
#                            where the gateway's standard output goes (gateway_start: a
#                            file), in TOKENGATE_LOG_FORMAT's format
gateway_config() {
  local scheme=http server_extra="" session="${GW_SESSION:-store = \"memory\"}" key="${GW_KEY:-}"
  [ -n "$key" ] || key="$("$BIN" keygen)"
  if [ -n "${GW_TLS_CERT:-}" ]; then
    scheme=https
    server_extra="tls = { cert = \"$GW_TLS_CERT\", key = \"$GW_TLS_KEY\" }"
  fi
  if [ "$MODE" = pinned ]; then
    server_extra="$server_extra
workers = 1"
  fi
  cat >"$1" <<TOML
[server]
listen = "127.0.0.1:$2"
public_url = "$scheme://127.0.0.1:$2"
admin_listen = "127.0.0.1:$3"
$server_extra
[oidc]
issuer = "$issuer"
client_id = "gateway"
client_secret = "gateway-secret"
auth_params = { prompt = "consent" }
[session]
keys = ["$key"]
$session
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
  if [ "${GW_ACCESS_LOG:-0}" = 1 ]; then printf '\n[log]\naccess = true\n' >>"$1"; fi
}

# gateway_start CONFIG [WRAPPER...] — tokengate ($BIN), run under WRAPPER if given (e.g.
# valgrind); sets $gw_pid. Pinned: on PROXY_CPU (the config says `workers = 1`: the same
# one core nginx gets). Auto: anywhere, at tokengate's default worker count.
gateway_start() {
  local config="$1" how
  shift
  if [ "$MODE" = pinned ]; then
    how="taskset -c $PROXY_CPU"
  else
    how="env"
  fi
  RUST_LOG="${RUST_LOG:-info}" \
    bench_bg $how "$@" "$BIN" run --config "$config" >>"$work/gateway.log" 2>&1
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

# floor_build RUSTFLAGS TARGET_DIR — bench/hyper_floor.rs built in TARGET_DIR; prints
# the executable's path.
floor_build() {
  local exe
  exe="$(RUSTFLAGS="$1" cargo bench --no-run --quiet --bench hyper_floor --target-dir "$2" \
    --message-format=json 2>/dev/null | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "hyper_floor":
        print(m["executable"])')"
  [ -x "$exe" ] || { echo "bench/hyper_floor.rs did not build" >&2; exit 1; }
  echo "$exe"
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

# cpu_ticks PID — user and system clock ticks of PID and its children so far: an nginx
# master and all its workers; a process's line in /proc counts all its threads.
cpu_ticks() {
  local pid total=0 f
  for pid in "$1" $(pgrep -P "$1"); do
    read -ra f <"/proc/$pid/stat"
    # Fields 14 and 15 (utime, stime), counted after the command name, which has no space.
    total=$((total + f[13] + f[14]))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

# cpu_us_per CPU_TICKS REQUESTS — microseconds of CPU per request.
cpu_us_per() {
  awk -v t="$1" -v hz="$hz" -v n="$2" 'BEGIN { printf "%.2f", n ? t / hz / n * 1e6 : 0 }'
}

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

# load_threads CONNS — how many threads the load generator gets: one when pinned (it
# shares LOAD_CPU); in auto mode one per core, but never more than CONNS (wrk and h2load
# need a connection for each thread).
load_threads() {
  local n
  n=$(nproc)
  [ "$MODE" = pinned ] && n=1
  [ "$1" -lt "$n" ] && n=$1
  echo "$n"
}

# wrk_run OUT CONNS SECONDS URL [wrk args...] — wrk (on LOAD_CPU with one thread when
# pinned; load_threads), latency distribution on; its output goes to OUT.
wrk_run() {
  local out="$1" conns="$2" secs="$3" url="$4"
  shift 4
  $(placed "$LOAD_CPU") wrk -t"$(load_threads "$conns")" -c "$conns" -d "${secs}s" --timeout 10s --latency "$@" "$url" >"$out"
}

# round_order ROUND TARGET... — sets $order: the targets, round ROUND starting one
# further on than the round before, so that no target always follows the same one (on
# this machine the order alone has moved a pair of figures by more than 10 %).
round_order() {
  local round="$1" by
  shift
  by=$(((round - 1) % $#))
  order=("${@:by+1}" "${@:1:by}")
}

# interleaved_rounds MEASURE WHAT — ROUNDS rounds over the targets in $targets at each of
# $CONNS connections, the targets in round_order. `MEASURE TARGET CONNS` loads TARGET for
# DURATION seconds and prints its figures, the last of them the requests it completed.
# Each measurement becomes a line "TARGET CONNS ROUND FIGURES... CPU_US" of
# $work/results, with the CPU time per request of the process ${server_pid[TARGET]};
# WHAT names the figures in the progress log.
interleaved_rounds() {
  local measure="$1" what="$2" round c t before after fig requests cpu_us
  : >"$work/results"
  for round in $(seq 1 "$ROUNDS"); do
    round_order "$round" "${targets[@]}"
    for c in $CONNS; do
      for t in "${order[@]}"; do
        before=$(cpu_ticks "${server_pid[$t]}")
        fig="$("$measure" "$t" "$c")"
        after=$(cpu_ticks "${server_pid[$t]}")
        requests="${fig##* }"
        fig="${fig% *}"
        cpu_us=$(cpu_us_per $((after - before)) "$requests")
        echo "$t $c $round $fig $cpu_us" >>"$work/results"
        log "round $round/$ROUNDS, $c connection(s), $t: $fig $cpu_us ($what cpu-µs/request)"
      done
    done
  done
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
# AWK_MEDIAN — an awk function for the report scripts: median(list), the median of the
# space-separated numbers in `list` (the rounds of one figure). Used as
# awk ... "$AWK_MEDIAN"' {...}'.
AWK_MEDIAN='
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
'

# AWK_ROUNDS — an awk rule for the reports of interleaved_rounds' results (lines "TARGET
# CONNS ROUND requests/s p50 p99 failed CPU"): each figure's values per target and
# connection count, in rps[k], p50[k], p99[k] and cpu[k] (lists for median) and failed[k]
# (a sum), k being TARGET SUBSEP CONNS.
AWK_ROUNDS='
  { k = $1 SUBSEP $2; rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6; failed[k] += $7; cpu[k] = cpu[k] " " $8 }
'

machine_line() {
  printf '%s, %s cores; load average %s\n' \
    "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
}
