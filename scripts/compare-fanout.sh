#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# PUBLISH fan-out side by side: basalt and redis-server, 1 publisher, SUBSCRIBERS subscribers
# (default 100; with basalt --shards N > 1 the kernel spreads them over the shards), measured
# with `loadtest fanout` (every PUBLISH reply must count every subscriber; every subscriber
# checks it got every message, in order). Both servers run at once, pinned to CPU $SERVER_CPU
# (default 0), the load generator to CPU $CLIENT_CPU (default 1); rounds alternate which
# server goes first; each figure is the median of ROUNDS (messages published per second,
# from the first PUBLISH to the last message read by the last subscriber).
#
# Usage: scripts/compare-fanout.sh
#
# Environment:
#   BASALT        basalt binary (default target/release/basalt)
#   LOADTEST      loadtest binary (default target/release/loadtest)
#   BASALT_ARGS   extra basalt arguments (default "--shards 1")
#   SUBSCRIBERS   subscriber connections (default 100)
#   MESSAGES      messages per run (default 20000)
#   SIZE          message size in bytes (default 16)
#   PIPELINES     publisher pipeline depths (default "1 16")
#   ROUNDS        rounds per server (default 3)
#   SERVER_CPU / CLIENT_CPU   pinning (default 0 / 1)

set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BASALT="${BASALT:-$TARGET_DIR/release/basalt}"
LOADTEST="${LOADTEST:-$TARGET_DIR/release/loadtest}"
BASALT_ARGS="${BASALT_ARGS-"--shards 1"}"
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
SUBSCRIBERS="${SUBSCRIBERS:-100}"
MESSAGES="${MESSAGES:-20000}"
SIZE="${SIZE:-16}"
PIPELINES="${PIPELINES:-1 16}"
ROUNDS="${ROUNDS:-3}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"

[ -x "$BASALT" ] || die "basalt binary $BASALT not found (cargo build --release -p basalt)"
[ -x "$LOADTEST" ] || die "loadtest binary $LOADTEST not found (cargo build --release -p loadtest)"
if ! command -v taskset >/dev/null || [ "$(cpu_usable "$SERVER_CPU")" = 0 ] || [ "$(cpu_usable "$CLIENT_CPU")" = 0 ]; then
    log "warning: cannot pin; running unpinned"
    SERVER_CPU=""
    CLIENT_CPU=""
fi

lib_init
read -ra basalt_extra <<<"$BASALT_ARGS"
redis_port=$(free_port)
basalt_port=$(free_port)
start_server redis "$redis_port" "$SERVER_CPU" "$REDIS_SERVER" --port "$redis_port" --save '' --appendonly no --bind 127.0.0.1
redis_pid=$SERVER_PID
start_server basalt "$basalt_port" "$SERVER_CPU" "$BASALT" --port "$basalt_port" --save '' --appendonly no --bind 127.0.0.1 "${basalt_extra[@]}"
basalt_pid=$SERVER_PID
wait_for_ping "$redis_port" redis 10 "$redis_pid" || die "redis-server did not start"
wait_for_ping "$basalt_port" basalt 20 "$basalt_pid" || die "basalt did not start"

RESULTS="$LIB_TMP/results.txt"
: >"$RESULTS"
run() {
    local server="$1" p="$2" port pin=()
    if [ "$server" = redis ]; then port=$redis_port; else port=$basalt_port; fi
    [ -n "$CLIENT_CPU" ] && pin=(taskset -c "$CLIENT_CPU")
    local out
    out=$("${pin[@]}" "$LOADTEST" fanout -p "$port" -s "$SUBSCRIBERS" -n "$MESSAGES" -P "$p" --size "$SIZE") ||
        die "loadtest fanout against $server failed: $out"
    local rate
    rate=$(sed -n 's/.*: \([0-9]*\) messages\/s.*/\1/p' <<<"$out")
    echo "$server $p $rate" >>"$RESULTS"
    log "$out ($server)"
}

for p in $PIPELINES; do
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then run redis "$p"; run basalt "$p"; else run basalt "$p"; run redis "$p"; fi
    done
done

echo "| P | redis msg/s | basalt msg/s | basalt/redis | redis deliveries/s | basalt deliveries/s |"
echo "|---:|---:|---:|---:|---:|---:|"
for p in $PIPELINES; do
    r=$(awk -v p="$p" '$1 == "redis" && $2 == p { print $3 }' "$RESULTS" | median)
    b=$(awk -v p="$p" '$1 == "basalt" && $2 == p { print $3 }' "$RESULTS" | median)
    awk -v p="$p" -v r="$r" -v b="$b" -v s="$SUBSCRIBERS" \
        'BEGIN { printf "| %s | %.0f | %.0f | %.2f | %.0f | %.0f |\n", p, r, b, b / r, r * s, b * s }'
done
