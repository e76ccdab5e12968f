# shellcheck shell=bash
# Shared helpers for basalt's scripts: source it, don't run it.
#
#   . "$(dirname "$0")/lib.sh"
#   lib_init                          # temp dir + cleanup trap (kills every server started)
#   port=$(free_port)
#   start_server redis "$port" 0 redis-server --port "$port" --save '' --appendonly no
#   wait_for_ping "$port" redis 10
#
# Everything listens on and talks to 127.0.0.1 only.

# Repository root (scripts/..).
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

LIB_PIDS=()      # servers started by start_server
LIB_NAMES=()
LIB_PORTS_GIVEN=" "
LIB_TMP=""
LIB_CHILD=""     # the command run_child is waiting for

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Creates $LIB_TMP and installs a trap that stops every server started through
# start_server (and removes $LIB_TMP) however the script ends: normally, on error, or on
# Ctrl-C.
lib_init() {
    LIB_TMP="$(mktemp -d "${TMPDIR:-/tmp}/basalt-scripts.XXXXXX")"
    trap lib_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

lib_cleanup() {
    local rc=$? i pid
    # No errexit here: a failing `wait` or `kill` must not skip stopping the rest.
    set +e
    if [ -n "$LIB_CHILD" ] && kill -0 "$LIB_CHILD" 2>/dev/null; then
        kill -TERM "$LIB_CHILD" 2>/dev/null
        wait "$LIB_CHILD" 2>/dev/null
    fi
    for i in "${!LIB_PIDS[@]}"; do
        pid="${LIB_PIDS[$i]}"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
        fi
    done
    for i in "${!LIB_PIDS[@]}"; do
        pid="${LIB_PIDS[$i]}"
        # Up to 5 s for a clean exit, then SIGKILL.
        local n=0
        while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
            sleep 0.1
            n=$((n + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "${LIB_NAMES[$i]} (pid $pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    LIB_PIDS=()
    if [ -n "$LIB_TMP" ] && [ -z "${KEEP_TMP:-}" ]; then
        rm -rf "$LIB_TMP"
    elif [ -n "$LIB_TMP" ]; then
        log "kept $LIB_TMP"
    fi
    return $rc
}

# run_child CMD ARGS...: runs CMD and returns its status. CMD runs in the background while
# the script waits for it, so Ctrl-C or SIGTERM reaches the script's trap at once (and the
# cleanup stops CMD) instead of after CMD ends.
run_child() {
    "$@" &
    LIB_CHILD=$!
    local rc=0
    wait "$LIB_CHILD" || rc=$?
    LIB_CHILD=""
    return $rc
}

# Prints a TCP port nothing listens on, never the same one twice in one script.
free_port() {
    local p i
    for i in $(seq 1 200); do
        if command -v python3 >/dev/null 2>&1; then
            p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        else
            p=$((20000 + RANDOM % 40000))
        fi
        case "$LIB_PORTS_GIVEN" in *" $p "*) continue ;; esac
        # Something listening (or a server we started but that has not bound yet)?
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            continue
        fi
        LIB_PORTS_GIVEN="$LIB_PORTS_GIVEN$p "
        echo "$p"
        return 0
    done
    die "no free port found"
}

# Prints 1 when CPU $1 exists and this process may run on it.
cpu_usable() {
    taskset -c "$1" true 2>/dev/null && echo 1 || echo 0
}

# start_server NAME PORT CPU CMD ARGS...
# Starts CMD in its own directory under $LIB_TMP (so no server writes into the work tree),
# pinned to CPU (empty: not pinned), output in $LIB_TMP/NAME.log; registers it for cleanup.
# Sets SERVER_PID.
start_server() {
    local name="$1" port="$2" cpu="$3"
    shift 3
    local dir="$LIB_TMP/$name"
    mkdir -p "$dir"
    local pin=()
    [ -n "$cpu" ] && pin=(taskset -c "$cpu")
    (cd "$dir" && exec "${pin[@]}" "$@") >"$LIB_TMP/$name.log" 2>&1 &
    SERVER_PID=$!
    LIB_PIDS+=("$SERVER_PID")
    LIB_NAMES+=("$name")
    log "$name: pid $SERVER_PID on 127.0.0.1:$port${cpu:+ (cpu $cpu)}: $(printf '%q ' "$@")"
}

# wait_for_ping PORT NAME [TIMEOUT_S] [PID]
# Waits until the server on PORT answers PING with PONG. Fails early if PID exits.
wait_for_ping() {
    local port="$1" name="$2" timeout="${3:-10}" pid="${4:-}"
    local deadline=$((SECONDS + timeout)) out
    while [ $SECONDS -lt "$deadline" ]; do
        # Refused while the server starts: redis-cli exits 1, which `set -e` must not see.
        out=$(redis-cli -h 127.0.0.1 -p "$port" ${REDISCLI_AUTH:+--no-auth-warning} PING 2>/dev/null) || out=""
        [ "$out" = "PONG" ] && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before answering PING; its log:"
            tail -n 20 "$LIB_TMP/$name.log" >&2
            return 1
        fi
        sleep 0.05
    done
    log "$name did not answer PING on port $port within ${timeout}s; its log:"
    tail -n 20 "$LIB_TMP/$name.log" >&2
    return 1
}

# Median of the numbers on stdin (one per line); empty input prints nothing.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
