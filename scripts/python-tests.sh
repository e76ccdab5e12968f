#!/usr/bin/env bash
# The real-client suite (tests/python): redis-py sync and asyncio, Celery, channels_redis and
# Django's cache against basalt --shards 4 and redis-server. Creates (or reuses) a virtual
# environment at ./.venv-tests (or $VENV), installs tests/python/requirements.txt from PyPI,
# and runs pytest; extra arguments go to pytest. Builds nothing: it runs target/debug/basalt
# (or $BASALT_BIN), so run `cargo build` first.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv-tests}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

if ! command -v redis-server >/dev/null; then
    echo "== installing redis-server (the oracle)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    # Debian's python3 ships venv without ensurepip until python3-venv is installed.
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        echo "== installing python3-venv"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi

# Reinstall only when the pins changed since the last install into this venv.
stamp="$VENV/.requirements.sha256"
want="$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "== pip install -r tests/python/requirements.txt into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
    echo "$want" > "$stamp"
fi

if [ -z "${BASALT_BIN:-}" ] && [ ! -x target/debug/basalt ]; then
    echo "no target/debug/basalt: run 'cargo build' first (or set BASALT_BIN)" >&2
    exit 1
fi

echo "== pytest tests/python (basalt --shards 4 and redis-server)"
exec "$VENV/bin/python" -m pytest tests/python -p no:cacheprovider "$@"
