#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Memory of basalt and redis-server side by side, for the data sets of issue #3's bar:
#   hashes: N hashes of 10 short fields   (HSET user:<i> f0 v0 ... f9 v9)
#   sets:   N sets of 10 small integers   (SADD set:<i> 1 2 ... 10)
# Each data set is loaded into a fresh server (redis-server; basalt --shards 1; basalt with
# its default shard count) through `redis-cli --pipe`, then INFO's used_memory and the
# process RSS (VmRSS of /proc/<pid>/status) are read, after the load and on the empty
# server. Errors while loading (a command basalt lacks) are counted and reported, not fatal.
#
# Usage: scripts/memory-compare.sh [--quick] [--keys N] [--out FILE]
#
# Environment (flags above override it):
#   BASALT        basalt binary (default target/release/basalt; built if missing)
#   REDIS_SERVER  redis-server binary (default /usr/bin/redis-server, else on PATH)
#   KEYS          keys per data set (default 100000)
#   QUICK=1       10,000 keys (for CI)
#   SETTLE        seconds to wait after loading before measuring (default 2: basalt's cron
#                 refreshes used_memory)
#   OUT=file      also write the table as Markdown
#
# The bar (issue #3): basalt's used_memory and RSS each <= redis-server's, for both sets.

set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '3,/^$/{s/^# \{0,1\}//;p}' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --keys) KEYS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

QUICK="${QUICK:-0}"
[ "$QUICK" = "0" ] && QUICK=""
if [ -n "$QUICK" ]; then
    KEYS="${KEYS:-10000}"
fi
KEYS="${KEYS:-100000}"
SETTLE="${SETTLE:-2}"
OUT="${OUT:-}"

if [ -z "${REDIS_SERVER:-}" ]; then
    if [ -x /usr/bin/redis-server ]; then
        REDIS_SERVER=/usr/bin/redis-server
    else
        REDIS_SERVER="$(command -v redis-server || true)"
    fi
fi
[ -n "$REDIS_SERVER" ] || die "redis-server not found (set REDIS_SERVER)"
command -v redis-cli >/dev/null || die "redis-cli not found"
command -v python3 >/dev/null || die "python3 not found"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BASALT="${BASALT:-$TARGET_DIR/release/basalt}"
if [ ! -x "$BASALT" ]; then
    log "building basalt (cargo build --release -p basalt)"
    (cd "$ROOT" && cargo build --release -p basalt --bin basalt) >&2 || die "cargo build failed"
fi
# Servers run in their own directories: the path must not be relative.
BASALT="$(cd "$(dirname "$BASALT")" && pwd)/$(basename "$BASALT")"

lib_init

# The RESP stream of a data set on stdout.
gen() {
    python3 - "$1" "$KEYS" <<'PY'
import sys
kind, n = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
buf = []
for i in range(n):
    if kind == "hashes":
        args = ["HSET", "user:%d" % i]
        for f in range(10):
            args += ["f%d" % f, "v%d" % f]
    else:
        args = ["SADD", "set:%d" % i] + list(range(1, 11))
    buf.append(cmd(*args))
    if len(buf) >= 1000:
        out.write(b"".join(buf))
        buf = []
out.write(b"".join(buf))
PY
}

info_field() { # port field
    redis-cli -h 127.0.0.1 -p "$1" INFO memory | tr -d '\r' | sed -n "s/^$2://p"
}

rss_bytes() { # pid
    awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}

RESULTS=()   # "dataset|server|used|rss|used_empty|rss_empty|errors|keys"

# measure NAME DATASET CMD...: starts a server, measures it empty, loads, measures again.
measure() {
    local name="$1" dataset="$2"
    shift 2
    local port
    port=$(free_port)
    start_server "$name-$dataset" "$port" "" "$@" --port "$port"
    local pid="$SERVER_PID"
    wait_for_ping "$port" "$name-$dataset" 20 "$pid" || die "$name did not start"
    sleep "$SETTLE"
    local used0 rss0
    used0=$(info_field "$port" used_memory)
    rss0=$(rss_bytes "$pid")
    local pipe_out errors
    pipe_out=$(gen "$dataset" | redis-cli -h 127.0.0.1 -p "$port" --pipe 2>&1 || true)
    errors=$(printf '%s\n' "$pipe_out" | sed -n 's/.*errors: \([0-9]*\).*/\1/p' | tail -n1)
    errors="${errors:-?}"
    sleep "$SETTLE"
    local used rss keys
    used=$(info_field "$port" used_memory)
    rss=$(rss_bytes "$pid")
    keys=$(redis-cli -h 127.0.0.1 -p "$port" DBSIZE | tr -d '\r')
    log "$name $dataset: keys $keys, errors $errors, used_memory $used0 -> $used, rss $rss0 -> $rss"
    RESULTS+=("$dataset|$name|$used|$rss|$used0|$rss0|$errors|$keys")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

COMMON=(--bind 127.0.0.1 --save '' --appendonly no)
for dataset in hashes sets; do
    measure redis "$dataset" "$REDIS_SERVER" "${COMMON[@]}"
    measure "basalt-shards-1" "$dataset" "$BASALT" "${COMMON[@]}" --shards 1
    measure "basalt-default" "$dataset" "$BASALT" "${COMMON[@]}"
done

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
per_key() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (a - b) / n; else print "-" }'; }

table() {
    echo "| data set ($KEYS keys) | server | keys | load errors | used_memory MiB | vs redis | RSS MiB | vs redis | used_memory B/key (over empty) | RSS B/key (over empty) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    local r ds name used rss used0 rss0 errors keys ref_used ref_rss
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r ds name used rss used0 rss0 errors keys <<<"$r"
        if [ "$name" = redis ]; then
            ref_used="$used"
            ref_rss="$rss"
        fi
        echo "| $ds | $name | $keys | $errors | $(mib "$used") | $(ratio "$used" "$ref_used") | $(mib "$rss") | $(ratio "$rss" "$ref_rss") | $(per_key "$used" "$used0" "$KEYS") | $(per_key "$rss" "$rss0" "$KEYS") |"
    done
}

echo
table
if [ -n "$OUT" ]; then
    table >"$OUT"
    log "table written to $OUT"
fi
