#!/usr/bin/env bash
# The whole test suite: unit tests, black-box tests against the real binary (--shards 4),
# differential tests against Debian's redis-server, the Python real-client suite (redis-py,
# Celery, channels_redis from PyPI in a venv), plus short smoke runs of the load tools.
# Installs redis-server/redis-tools with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_redis() { ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; }
if need_redis; then
    echo "== installing redis-server and redis-tools (the differential oracle)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    if command -v apt-get >/dev/null; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
        # The Debian package starts a system redis on 6379; the tests use their own ports.
    else
        echo "redis-server and redis-cli are needed (the differential tests compare against them)" >&2
        exit 1
    fi
fi

echo "== cargo test (unit, black-box, differential)"
cargo test --workspace --all-targets --no-fail-fast

echo "== real clients: redis-py, Celery, channels_redis, Django cache (tests/python, in a venv)"
scripts/python-tests.sh -q

echo "== smoke: compare-redis.sh (QUICK)"
QUICK=1 scripts/compare-redis.sh

echo "== smoke: loadtest against basalt"
scripts/loadtest-smoke.sh

echo "== smoke: crash test (kill -9 under a write load, everysec and always; QUICK)"
QUICK=1 scripts/crash-test.sh

echo "== smoke: memory side by side with redis-server (QUICK)"
QUICK=1 scripts/memory-compare.sh

echo "== smoke: random differential fuzzing against redis-server (fixed seed; scripts/diff-fuzz.py --help for long runs)"
python3 scripts/diff-fuzz.py --commands 3000 --seed 1 --check-encodings
python3 scripts/diff-fuzz.py --commands 3000 --seed 2 --resp3
python3 scripts/diff-fuzz.py --commands 3000 --seed 3 --small-encodings --check-encodings --check-dumps
python3 scripts/diff-fuzz.py --commands 3000 --seed 4 --lfu
python3 scripts/diff-fuzz.py --commands 3000 --seed 5 --events

echo "== smoke: protocol mutations against redis-server (fixed seed; scripts/proto-fuzz.py --help for long runs)"
python3 scripts/proto-fuzz.py --count 150 --seed 1
