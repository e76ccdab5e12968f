#!/usr/bin/env bash
# A short loadtest run against basalt (--shards 4): every reply is checked, so an error
# reply or a lost connection fails the run. The camera-pipeline scenario needs lists and
# pub/sub and joins here when basalt has them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lib_init
cargo build --release -q -p basalt -p loadtest
port=$(free_port)
start_server basalt "$port" "" "$ROOT/target/release/basalt" --port "$port" --bind 127.0.0.1 --save '' --shards 4
wait_for_ping "$port" basalt 10 "$SERVER_PID"
"$ROOT/target/release/loadtest" bench --port "$port" --clients 20 --pipeline 8 --requests 20000 --keyspace 10000 --tests set,get,incr,mset
