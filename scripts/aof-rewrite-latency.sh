#!/usr/bin/env bash
# p99.9 of a redis-benchmark SET load (-c 50, 400k requests over a 1M keyspace) with and without
# a BGREWRITEAOF started 0.3 s into it, after preloading ~950k keys; server pinned to CPU 0,
# benchmark to CPU 1. Usage: scripts/aof-rewrite-latency.sh basalt|redis PORT SCRATCH_DIR
# (SCRATCH_DIR is deleted and recreated). BASALT_BIN overrides target/release/basalt.
set -u
srv="$1"; port="$2"; dir="$3"
BIN="${BASALT_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/basalt}"
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
if [ "$srv" = redis ]; then
  taskset -c 0 redis-server --port $port --save '' --appendonly yes --dir "$dir" > log 2>&1 &
else
  taskset -c 0 "$BIN" --port $port --shards 1 --save '' --appendonly yes --dir "$dir" > log 2>&1 &
fi
pid=$!
for i in $(seq 100); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
taskset -c 1 redis-benchmark -p $port -t set -n 3000000 -r 1000000 -P 100 -c 10 -q > /dev/null
echo "$srv keys: $(redis-cli -p $port dbsize)"
p999() { grep -E "^ *99\.9[0-9]*% <=|99\.900%" | head -1; }
run() { taskset -c 1 redis-benchmark -p $port -t set -n 400000 -r 1000000 -c 50 2>/dev/null | tr '\r' '\n' | awk '/Latency by percentile/{f=1;next} f && /%/ {split($1,a,"%"); if (a[1]+0 >= 99.9) {print "p99.9 <= " $3 " ms"; exit}}'; }
echo "-- $srv baseline"; run
echo "-- $srv with BGREWRITEAOF"
( sleep 0.3; redis-cli -p $port bgrewriteaof ) &
run
sleep 2
redis-cli -p $port info persistence | grep -E "aof_rewrites|aof_last_rewrite_time_sec|aof_last_bgrewrite_status|aof_last_cow"
redis-cli -p $port shutdown nosave > /dev/null 2>&1; wait $pid
