#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Start-up time from a big AOF: basalt against redis-server loading the same data.
#
# Generates one AOF directory (Redis 7 multi-part layout, a RESP base file with no RDB
# preamble, an empty incr file, the manifest) of about SIZE_MB megabytes: SETs with
# DATA_SIZE-byte values, with every 10th key also a hash (HSET, 4 fields), every 20th a list
# (RPUSH, 8 items), every 50th a key with an absolute expiry (SET ... PXAT), a cross-shard MSET
# every 1000 keys. Each server gets its own copy (both may write into the directory) and is
# timed from its start until PING answers PONG (basalt answers -LOADING before; redis-server
# too), then DBSIZE is compared. Each server runs ROUNDS times; the table shows the median.
#
# Usage: scripts/aof-startup.sh [--quick]
#
# Environment:
#   BASALT        basalt binary (default target/release/basalt; a release build is needed
#                 for meaningful figures: cargo build --release)
#   BASALT_ARGS   extra basalt arguments (default "--shards 4")
#   REDIS_SERVER  redis-server binary (default: redis-server on PATH)
#   SIZE_MB       size of the AOF to generate (default 1024)
#   DATA_SIZE     bytes per string value (default 100)
#   ROUNDS        runs per server (default 3)
#   QUICK=1       smoke mode: SIZE_MB=32, ROUNDS=1
#   OUT=file      also write the table as Markdown
#   KEEP_TMP=1    keep the generated directory

set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "${1:-}" = "--quick" ] && QUICK=1
if [ -n "${QUICK:-}" ]; then
    SIZE_MB=${SIZE_MB:-32}
    ROUNDS=${ROUNDS:-1}
fi
SIZE_MB=${SIZE_MB:-1024}
DATA_SIZE=${DATA_SIZE:-100}
ROUNDS=${ROUNDS:-3}
BASALT=${BASALT:-$ROOT/target/release/basalt}
BASALT_ARGS=${BASALT_ARGS---shards 4}
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
[ -x "$BASALT" ] || die "no basalt binary at $BASALT (cargo build --release)"
# Servers run from their own directories: make the path absolute.
BASALT="$(cd "$(dirname "$BASALT")" && pwd)/$(basename "$BASALT")"
[ -n "$REDIS_SERVER" ] || die "no redis-server"

lib_init
src="$LIB_TMP/src/appendonlydir"
mkdir -p "$src"
log "generating a ${SIZE_MB} MB AOF in $src"
python3 - "$src" "$SIZE_MB" "$DATA_SIZE" <<'EOF'
import sys
d, size_mb, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limit = size_mb * 1024 * 1024
def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
pad = b"x" * max(0, data - 12)
written, i, buf = 0, 0, []
with open(d + "/appendonly.aof.1.base.aof", "wb") as f:
    f.write(cmd(b"SELECT", b"0"))
    while written < limit:
        k = b"key:%d" % i
        buf.append(cmd(b"SET", k, b"%012d" % i + pad))
        if i % 10 == 0:
            buf.append(cmd(b"HSET", b"hash:%d" % i, b"f1", b"v1", b"f2", b"v2", b"f3", b"v3", b"f4", b"%d" % i))
        if i % 20 == 0:
            buf.append(cmd(b"RPUSH", b"list:%d" % i, *[b"item-%d" % j for j in range(8)]))
        if i % 50 == 0:
            buf.append(cmd(b"SET", b"ttl:%d" % i, b"v", b"PXAT", b"99999999999999"))
        if i % 1000 == 0:
            buf.append(cmd(b"MSET", b"m:a:%d" % i, b"1", b"m:b:%d" % i, b"2", b"m:c:%d" % i, b"3"))
        i += 1
        if len(buf) >= 4096:
            chunk = b"".join(buf)
            f.write(chunk)
            written += len(chunk)
            buf = []
    chunk = b"".join(buf)
    f.write(chunk)
open(d + "/appendonly.aof.1.incr.aof", "wb").close()
with open(d + "/appendonly.aof.manifest", "w") as m:
    m.write("file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n")
EOF
bytes=$(du -cb "$src" | tail -1 | cut -f1)
log "AOF: $bytes bytes"

# startup NAME CMD...: copies the AOF, starts CMD with --dir, prints "seconds keys".
startup() {
    local name="$1"
    shift
    local dir="$LIB_TMP/data-$name"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$src" "$dir/"
    sync
    local port t0 t1 keys
    port=$(free_port)
    t0=$(date +%s.%N)
    start_server "$name" "$port" "" "$@" --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly yes --aof-use-rdb-preamble no --dir "$dir"
    local pid=$SERVER_PID
    wait_for_ping "$port" "$name" 3600 "$pid" || { kill "$pid" 2>/dev/null; die "$name did not start"; }
    t1=$(date +%s.%N)
    keys=$(redis-cli -p "$port" dbsize)
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $keys"
}

declare -A times keys
for name in redis basalt; do
    for r in $(seq 1 "$ROUNDS"); do
        if [ "$name" = redis ]; then
            out=$(startup "redis-$r" "$REDIS_SERVER")
        else
            # shellcheck disable=SC2086
            out=$(startup "basalt-$r" "$BASALT" $BASALT_ARGS)
        fi
        log "$name round $r: $out (seconds, keys)"
        times[$name]+="${out%% *}"$'\n'
        keys[$name]="${out##* }"
    done
done
[ "${keys[redis]}" = "${keys[basalt]}" ] || die "DBSIZE differs: redis ${keys[redis]}, basalt ${keys[basalt]}"
rt=$(printf '%s' "${times[redis]}" | median)
bt=$(printf '%s' "${times[basalt]}" | median)
table="| AOF bytes | keys | redis-server s | basalt s | redis/basalt |
|---:|---:|---:|---:|---:|
| $bytes | ${keys[basalt]} | $(printf '%.2f' "$rt") | $(printf '%.2f' "$bt") | $(awk -v r="$rt" -v b="$bt" 'BEGIN { printf "%.2f", r / b }') |"
echo "$table"
[ -n "${OUT:-}" ] && echo "$table" >"$OUT"
exit 0
