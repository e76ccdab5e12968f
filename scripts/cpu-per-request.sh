#!/usr/bin/env bash
# CPU time per request, per server thread, for one redis-benchmark run: where a server spends
# its CPU, independent of throughput noise. Prints req/s, the commands per AOF record
# (basalt_persistence_records) and utime+stime per request of each thread name.
#
# Usage: scripts/cpu-per-request.sh [server args...]
#   e.g. scripts/cpu-per-request.sh --shards 1 --appendonly yes --appendfsync everysec
# Environment:
#   SERVER     server binary (default target/release/basalt; redis-server works too)
#   P          pipeline depth (default 16); N requests (default 2,000,000 at P>1, 300,000 at P1)
#   T          redis-benchmark test (default set); CLIENTS (default 50)
#   SERVER_CPU / CLIENT_CPU   pinning (default 0 / 1)
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=${SERVER:-target/release/basalt}
P=${P:-16}; T=${T:-set}; CLIENTS=${CLIENTS:-50}
N=${N:-$(( P == 1 ? 300000 : 2000000 ))}
SERVER_CPU=${SERVER_CPU:-0}; CLIENT_CPU=${CLIENT_CPU:-1}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
taskset -c "$SERVER_CPU" "$SERVER" --port "$port" --save '' --dir "$dir" "$@" > "$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
bench() { taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" -c "$CLIENTS" -n "$1" -P "$P" -t "$T" -q | tr '\r' '\n' | grep 'per second' | tail -1; }
snap() {
    for t in /proc/$pid/task/*; do echo "$(tr ' ' '_' < "$t/comm") $(awk '{print $14+$15}' "$t/stat")"; done |
        awk '{a[$1]+=$2} END{for (k in a) print k, a[k]}' | sort
}
records() { redis-cli -p "$port" info stats | tr -d '\r' | awk -F: '/^basalt_persistence_records/{print $2}'; }
bench 20000 >/dev/null
snap > "$dir/a"; r0=$(records)
out=$(bench "$N")
snap > "$dir/b"; r1=$(records)
echo "P$P $T: $out"
if [ -n "$r0" ] && [ "$r1" != "$r0" ]; then echo "  commands per AOF record: $(( N / (r1 - r0) ))"; fi
hz=$(getconf CLK_TCK)
join "$dir/a" "$dir/b" | awk -v n="$N" -v hz="$hz" '$3 > $2 {printf "  %-16s %.3f us/request\n", $1, ($3-$2)*1e6/hz/n}'
