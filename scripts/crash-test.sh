#!/usr/bin/env bash
# Crash test of the append-only file: rounds of `kill -9` during a write load, for
# appendfsync everysec and always. Each round checks, after a restart over the same
# directory, that every acknowledged write is there (0 lost) and that what is there is a
# valid prefix of what each connection sent (a connection's writes are sequential, so the
# survivors of each connection must be keys 0..m with m >= its last acknowledged key).
#
#   QUICK=1 scripts/crash-test.sh     # CI: 3 rounds per policy, under a minute
#   scripts/crash-test.sh             # release: 25 rounds per policy
#   ROUNDS=100 BASALT_BIN=target/release/basalt scripts/crash-test.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init

BIN="${BASALT_BIN:-}"
if [ -z "$BIN" ]; then
    if [ -x "$ROOT/target/release/basalt" ]; then BIN="$ROOT/target/release/basalt"; else BIN="$ROOT/target/debug/basalt"; fi
fi
[ -x "$BIN" ] || die "no basalt binary at $BIN (cargo build first)"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
if [ "${QUICK:-0}" = 1 ]; then ROUNDS="${ROUNDS:-3}"; else ROUNDS="${ROUNDS:-25}"; fi
CONNS="${CONNS:-8}"

# The load: CONNS connections, each pipelining SETs of k:<conn>:<n> (n = 0, 1, 2...) and
# recording the highest n acknowledged in order. Runs until killed by the server's death.
cat >"$LIB_TMP/load.py" <<'EOF'
import socket, sys, threading, json
port, conns, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
acked = [-1] * conns
def run(c):
    try:
        s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
        n = 0
        while True:
            batch = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
                             for k, v in ((b"k:%d:%d" % (c, n + i), b"%d" % (n + i)) for i in range(16)))
            s.sendall(batch)
            for i in range(16):
                line = f.readline()
                if line != b"+OK\r\n":
                    return
                acked[c] = n + i
                if n + i == 0: open(out + ".started", "w").close()
            n += 16
    except OSError:
        return
ts = [threading.Thread(target=run, args=(c,), daemon=True) for c in range(conns)]
for t in ts: t.start()
for t in ts: t.join()
json.dump(acked, open(out, "w"))
EOF

# The check: every acked key present, and per connection a gap-free prefix.
cat >"$LIB_TMP/check.py" <<'EOF'
import socket, sys, json
port, acked = int(sys.argv[1]), json.load(open(sys.argv[2]))
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
def mget(keys):
    s.sendall(b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1) + b"".join(b"$%d\r\n%s\r\n" % (len(k), k) for k in keys))
    n = int(f.readline()[1:]); vals = []
    for _ in range(n):
        h = f.readline()
        if h.startswith(b"$-1"): vals.append(None)
        else: vals.append(f.read(int(h[1:]) + 2)[:-2])
    return vals
lost = holes = 0; total = 0
for c, a in enumerate(acked):
    n, seen_missing = 0, False
    while True:
        keys = [b"k:%d:%d" % (c, i) for i in range(n, n + 500)]
        vals = mget(keys)
        for i, v in zip(range(n, n + 500), vals):
            if v is None:
                if i <= a: lost += 1
                seen_missing = True
            else:
                total += 1
                if seen_missing: holes += 1
                if v != b"%d" % i: holes += 1
        n += 500
        if n > a + 1 and all(v is None for v in vals): break
print(f"present={total} lost={lost} holes={holes}")
sys.exit(1 if lost or holes else 0)
EOF

run_policy() {
    local policy="$1" dir="$LIB_TMP/data-$1" round port pid
    mkdir -p "$dir"
    for round in $(seq 1 "$ROUNDS"); do
        port=$(free_port)
        start_server "basalt-$policy-$round" "$port" "" "$BIN" --port "$port" --bind 127.0.0.1 --shards 4 \
            --save '' --appendonly yes --appendfsync "$policy" --dir "$dir"
        pid=$SERVER_PID
        wait_for_ping "$port" "basalt-$policy-$round" 30 "$pid" || die "basalt did not start"
        python3 "$LIB_TMP/load.py" "$port" "$CONNS" "$LIB_TMP/acked.json" &
        local load=$! waited=0
        # Kill only once writes are being acknowledged, at a random moment after.
        while [ ! -e "$LIB_TMP/acked.json.started" ] && [ $waited -lt 100 ]; do sleep 0.05; waited=$((waited + 1)); done
        rm -f "$LIB_TMP/acked.json.started"
        sleep "0.$((1 + RANDOM % 8))"
        kill -9 "$pid"
        wait "$load" || true
        wait "$pid" 2>/dev/null || true
        port=$(free_port)
        start_server "basalt-$policy-$round-check" "$port" "" "$BIN" --port "$port" --bind 127.0.0.1 --shards 4 \
            --save '' --appendonly yes --appendfsync "$policy" --dir "$dir"
        pid=$SERVER_PID
        wait_for_ping "$port" "basalt-$policy-$round-check" 60 "$pid" || die "basalt did not start"
        if ! result=$(python3 "$LIB_TMP/check.py" "$port" "$LIB_TMP/acked.json"); then
            die "$policy round $round: $result (acked per connection: $(cat "$LIB_TMP/acked.json"))"
        fi
        log "$policy round $round/$ROUNDS: $result"
        redis-cli -p "$port" FLUSHALL >/dev/null
        redis-cli -p "$port" SHUTDOWN >/dev/null 2>&1 || true
        wait "$pid" 2>/dev/null || true
    done
}

run_policy everysec
run_policy always
log "crash test passed: $ROUNDS rounds per policy, 0 acknowledged writes lost"
