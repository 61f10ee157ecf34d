#!/usr/bin/env bash
# What the session store adds to a request whose session is not in tokengate's cache:
# the same load with every session cached, and with nearly none, on Redis.
#
# A real redis-server (no persistence) holds SESSIONS sessions (default 10,000), logged
# in beforehand through the test provider's form (bench/login.mjs, PARALLEL at a time;
# the time it took is printed). wrk sends GETs to the `token = "user"` route, each with
# the next session's cookie (a Lua script walks the list, each wrk thread from its own
# starting point), so consecutive requests never share a session. Two configurations of
# tokengate read those sessions:
#   hit   session.cache_capacity at its default (100,000): after a warm-up that has
#         asked for every session once, every request finds its session in the cache;
#   miss  cache_capacity = 1, the least allowed: nearly every request misses the cache
#         and reads its session from Redis and decrypts it.
# The difference between the two rows' latencies is what the store adds on a miss.
#
# Only one tokengate runs at a time, restarted for each target in each round: two
# instances on one Redis drop each other's cached copies through the store's change
# notices whenever one of them slides a session's idle time, which would turn some of
# the hit row's requests into misses. Both rows see the same slides: a session's
# `last_seen` is written back at most once a minute, so with 10,000 sessions up to about
# 170 requests a second read and write the store in either configuration.
#
# Each target at each of CONNS connections for DURATION seconds, ROUNDS times, the
# targets interleaved (each round starts with the other one). It prints requests/s, p50
# and p99 (the median of the rounds), Redis commands per request (about 0 for hit, 1 or
# more for miss: the check that the cache did what it should), and the CPU time per
# request of tokengate and of redis-server; then the difference miss − hit.
#
# MODE=auto (the default): nothing pinned, tokengate at its own worker count, wrk with
# one thread per core (see MODE in bench/lib.sh). MODE=pinned: tokengate with one worker
# on PROXY_CPU; wrk, Redis, the upstream and the provider on LOAD_CPU.
#
#   bench/store-miss.sh   env: MODE (auto), SESSIONS (10000), PARALLEL (32),
#                              DURATION (10), ROUNDS (3), CONNS ("1 16"), PGO (0)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${MODE:-auto}"
. bench/lib.sh
SESSIONS="${SESSIONS:-10000}"
PARALLEL="${PARALLEL:-32}"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-1 16}"

apt_install_missing redis-server:redis-server redis-cli:redis-tools
bench_init
UP=$(free_port) GW=$(free_port) ADMIN=$(free_port) REDIS=$(free_port)
echo "machine: $(machine_line)"
echo "commit:  $(git rev-parse --short HEAD); build: $BUILD"

mkdir -p "$work/redis"
bench_bg $(placed "$LOAD_CPU") redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work/redis" --logfile "$work/redis/redis.log"
redis_pid=$last_pid
for _ in $(seq 1 100); do [ "$(redis-cli -p "$REDIS" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
[ "$(redis-cli -p "$REDIS" ping 2>/dev/null)" = PONG ] || { echo "redis-server did not start" >&2; exit 1; }
redis_commands() { redis-cli -p "$REDIS" info stats | tr -d '\r' | sed -n 's/^total_commands_processed://p'; }

upstream_start "$UP"
# Access tokens that outlive the logins and the run: no refresh on the way.
OP_ACCESS_TOKEN_TTL=14400 provider_start "$GW"

# Both configurations on the same port (one at a time), with the same key and store, so
# they read the same sessions and the provider knows one redirect URI.
key="$("$BIN" keygen)"
for target in hit miss; do
  capacity=""
  [ "$target" = miss ] && capacity="cache_capacity = 1"
  GW_KEY="$key" GW_SESSION="store = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS\"
$capacity" gateway_config "$work/$target.toml" "$GW" "$ADMIN" "$UP"
done

# The Lua script for THREADS wrk threads: each thread walks the cookies from its own
# starting point, one session per request.
rotate_script() {
  cat >"$work/rotate-$1.lua" <<LUA
local threads, cookies, n, i = $1, {}, 0, 0
local made = 0
function setup(thread)
  made = made + 1
  thread:set("id", made)
end
function init(args)
  for line in io.lines("$work/cookies") do
    n = n + 1
    cookies[n] = "tokengate=" .. line
  end
  i = math.floor((id - 1) * n / threads)
end
function request()
  i = i % n + 1
  return wrk.format(nil, nil, { ["Cookie"] = cookies[i], ["X-CSRF"] = "1" })
end
LUA
  echo "$work/rotate-$1.lua"
}

# rotate OUT CONNS SECONDS — wrk through tokengate, a session of its own for each request.
rotate() {
  wrk_run "$1" "$2" "$3" "http://127.0.0.1:$GW/api/items" -s "$(rotate_script "$(load_threads "$2")")"
}

cached() { curl -sf "http://127.0.0.1:$ADMIN/metrics" | awk '$1 == "tokengate_sessions_cached" { print $2 }'; }

# === The sessions ===========================================================================
gateway_start "$work/hit.toml"
wait_http "http://127.0.0.1:$ADMIN/readyz"
log "logging in $SESSIONS sessions, $PARALLEL at a time"
started=$(date +%s.%N)
node bench/login.mjs "http://127.0.0.1:$GW" "$SESSIONS" "$PARALLEL" >"$work/cookies"
login_secs=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
[ "$(wc -l <"$work/cookies")" -eq "$SESSIONS" ] || { echo "not every login succeeded" >&2; exit 1; }
echo "$SESSIONS logins in $login_secs s ($PARALLEL at a time); Redis: $(redis-cli -p "$REDIS" dbsize) keys, $(redis-cli -p "$REDIS" info memory | tr -d '\r' | sed -n 's/^used_memory_human://p') used"
status="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: tokengate=$(head -1 "$work/cookies")" -H 'X-CSRF: 1' "http://127.0.0.1:$GW/api/items")"
[ "$status" = 200 ] || { echo "/api/items answered $status with a session, not 200" >&2; exit 1; }
bench_stop "$gw_pid"

# === The load ===============================================================================
# start_target TARGET — tokengate with TARGET's config, warmed up: for hit, until every
# session is in its cache (a pass of wrk at a time, up to 10); for miss, one pass too, so
# that both start with their connections to Redis and the upstream open.
start_target() {
  local pass
  gateway_start "$work/$1.toml"
  wait_http "http://127.0.0.1:$ADMIN/readyz"
  for pass in $(seq 1 10); do
    rotate "$work/warm.out" 16 2
    [ "$1" = miss ] && return 0
    [ "$(cached)" -ge "$SESSIONS" ] && return 0
  done
  echo "after 10 passes tokengate held $(cached) sessions in its cache, not $SESSIONS" >&2
  exit 1
}

targets=(hit miss)
results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  round_order "$round" "${targets[@]}"
  for t in "${order[@]}"; do
    start_target "$t"
    for c in $CONNS; do
      tg_before=$(cpu_ticks "$gw_pid") redis_before=$(cpu_ticks "$redis_pid") cmds_before=$(redis_commands)
      rotate "$work/wrk.out" "$c" "$DURATION"
      tg_after=$(cpu_ticks "$gw_pid") redis_after=$(cpu_ticks "$redis_pid") cmds_after=$(redis_commands)
      requests=$(awk '/ requests in / { print $1 }' "$work/wrk.out")
      # The two INFO calls are commands too.
      cmds=$(awk -v c=$((cmds_after - cmds_before - 1)) -v n="$requests" 'BEGIN { printf "%.3f", n ? c / n : 0 }')
      fig="$(wrk_figures "$work/wrk.out")"
      echo "$t $c $round $fig $cmds $(cpu_us_per $((tg_after - tg_before)) "$requests") $(cpu_us_per $((redis_after - redis_before)) "$requests")" >>"$results"
      log "round $round/$ROUNDS, $c connections, $t: $fig $cmds (requests/s p50 p99 failed redis-commands/request)"
    done
    bench_stop "$gw_pid"
  done
done

# === Report =================================================================================
echo
echo "machine after the run: $(machine_line)"
where_redis=""
[ "$MODE" = pinned ] && where_redis=" (Redis on CPU $LOAD_CPU)"
echo "median of $ROUNDS rounds of ${DURATION} s; $SESSIONS sessions on Redis, one per request in turn; $(mode_line)$where_redis"
awk -v conns="$CONNS" "$AWK_MEDIAN"'
  { k = $1 SUBSEP $2; rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6; failed[k] += $7
    cmds[k] = cmds[k] " " $8; tg[k] = tg[k] " " $9; rd[k] = rd[k] " " $10 }
  END {
    printf "%-6s %-6s %11s %9s %9s %7s %11s %13s %13s\n", "conns", "cache", "requests/s", "p50 ms", "p99 ms", "failed", "redis/req", "tg CPU us/req", "redis us/req"
    n = split(conns, cs, " ")
    for (i = 1; i <= n; i++) {
      for (j = 1; j <= 2; j++) {
        t = j == 1 ? "hit" : "miss"
        k = t SUBSEP cs[i]
        printf "%-6s %-6s %11.0f %9.3f %9.3f %7d %11.3f %13.2f %13.2f\n", cs[i], t, median(rps[k]), median(p50[k]), median(p99[k]), failed[k], median(cmds[k]), median(tg[k]), median(rd[k])
      }
    }
    print ""
    for (i = 1; i <= n; i++) {
      h = "hit" SUBSEP cs[i]; m = "miss" SUBSEP cs[i]
      printf "a miss adds at %s connection(s): p50 %+.3f ms, p99 %+.3f ms; requests/s %.3f of hit'"'"'s; CPU per request %+.2f us tokengate, %+.2f us Redis\n", cs[i],
        median(p50[m]) - median(p50[h]), median(p99[m]) - median(p99[h]), median(rps[m]) / median(rps[h]),
        median(tg[m]) - median(tg[h]), median(rd[m]) - median(rd[h])
    }
  }' "$results"
if awk '$7 > 0 { bad = 1 } END { exit !bad }' "$results"; then
  echo "some requests failed (see the failed column)" >&2
  exit 1
fi
