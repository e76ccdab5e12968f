#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Side-by-side throughput of basalt and redis-server, measured with redis-benchmark.
#
# Both servers run at once, same settings, persistence off, each pinned to CPU $SERVER_CPU
# (default 0); redis-benchmark runs pinned to CPU $CLIENT_CPU (default 1). Each test is run
# on one server and then at once on the other (the one that goes first alternates), so a
# slow stretch of a shared machine hits both alike; each figure is the median of ROUNDS.
#
# Usage: scripts/compare-redis.sh [--quick] [--rounds N] [--requests N] [--tests LIST] [--out FILE]
#
# Environment (flags above override it):
#   BASALT        basalt binary (default target/release/basalt; built if missing)
#   BASALT_ARGS   extra basalt arguments (default "--shards 1"; set to "" for none)
#   REDIS_SERVER  redis-server binary (default: redis-server on PATH)
#   REDIS_ARGS    extra redis-server arguments (default none)
#   COMMON_ARGS   arguments given to both (default "--bind 127.0.0.1")
#   TESTS         redis-benchmark -t list (default set,get,incr,mset,lpush,rpop,sadd,hset,
#                 spop,zadd,lrange_100,evalsha, in that order: RPOP pops what LPUSH pushed, SPOP what
#                 SADD added, on both servers alike; the list of
#                 redis-benchmark test names: ping_inline,ping_mbulk,set,get,incr,lpush,rpush,
#                 lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_300,lrange_500,
#                 lrange_600,mset), plus `evalsha`: EVALSHA of a small script
#                 ($SCRIPT, default an INCR of KEYS[1]) loaded into both servers first
#   PIPELINES     pipeline depths, space separated (default "1 16")
#   REQUESTS      requests per test per run at P1 (default 100000); a pipelined run sends
#                 REQUESTS x min(P, PIPELINE_SCALE), so that it lasts about as long as the
#                 P1 run instead of a fraction of a second (connection set-up and ramp-up
#                 weigh on runs that short)
#   PIPELINE_SCALE  see REQUESTS (default 8; 1 sends REQUESTS at every depth)
#   ROUNDS        rounds per server (default 3)
#   CLIENTS       connections (default 50)
#   KEYSPACE      redis-benchmark -r (default unset: every command hits the same key, as
#                 plain redis-benchmark does)
#   DATA_SIZE     redis-benchmark -d (default unset: 3 bytes)
#   SERVER_CPU / CLIENT_CPU   pinning (default 0 / 1; unpinned when unavailable)
#   BENCH_TIMEOUT seconds one redis-benchmark run may take (default 600)
#   TLS=1         benchmark over TLS with client certificates (mTLS): both servers get a
#                 TLS port and the same certificates (made here with openssl), redis-benchmark
#                 connects with --tls --cacert --cert --key
#   QUICK=1       smoke mode for CI: 2000 requests, 1 round, no warm-up (~5 s)
#   OUT=file      also write the table as Markdown
#
# Calibration: BASALT=$(command -v redis-server) BASALT_ARGS="" scripts/compare-redis.sh
# compares redis with itself; its ratios show the noise of the machine.

set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '3,/^$/{s/^# \{0,1\}//;p}' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --requests) REQUESTS="$2"; shift ;;
        --tests) TESTS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

QUICK="${QUICK:-0}"
[ "$QUICK" = "0" ] && QUICK=""
if [ -n "$QUICK" ]; then
    REQUESTS="${REQUESTS:-2000}"
    ROUNDS="${ROUNDS:-1}"
    WARMUP="${WARMUP:-0}"
    PIPELINE_SCALE="${PIPELINE_SCALE:-1}"
fi
REQUESTS="${REQUESTS:-100000}"
PIPELINE_SCALE="${PIPELINE_SCALE:-8}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-1}"
TESTS="${TESTS:-set,get,incr,mset,lpush,rpop,sadd,hset,spop,zadd,lrange_100,evalsha}"
SCRIPT="${SCRIPT:-return redis.call('incr', KEYS[1])}"
PIPELINES="${PIPELINES:-1 16}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-}"
DATA_SIZE="${DATA_SIZE:-}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-600}"
OUT="${OUT:-}"
TLS="${TLS:-0}"
[ "$TLS" = "0" ] && TLS=""
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
REDIS_BENCHMARK="${REDIS_BENCHMARK:-redis-benchmark}"
BASALT_ARGS="${BASALT_ARGS-"--shards 1"}"
REDIS_ARGS="${REDIS_ARGS-}"
COMMON_ARGS="${COMMON_ARGS-"--bind 127.0.0.1"}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BASALT="${BASALT:-$TARGET_DIR/release/basalt}"

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || die "REQUESTS must be a positive integer"
[[ "$PIPELINE_SCALE" =~ ^[1-9][0-9]*$ ]] || die "PIPELINE_SCALE must be a positive integer"
# requests_for P: the requests of one run at pipeline depth P (see REQUESTS).
requests_for() { echo $((REQUESTS * ($1 < PIPELINE_SCALE ? $1 : PIPELINE_SCALE))); }
for tool in "$REDIS_SERVER" "$REDIS_BENCHMARK" redis-cli; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install redis-server redis-tools)"
done
if [ ! -x "$BASALT" ]; then
    if [ "$BASALT" = "$TARGET_DIR/release/basalt" ]; then
        log "building basalt (cargo build --release -p basalt)"
        (cd "$ROOT" && cargo build --release -p basalt --bin basalt) >&2 || die "cargo build failed"
    fi
    [ -x "$BASALT" ] || die "basalt binary $BASALT not found"
fi

if ! command -v taskset >/dev/null || [ "$(cpu_usable "$SERVER_CPU")" = 0 ] || [ "$(cpu_usable "$CLIENT_CPU")" = 0 ]; then
    log "warning: cannot pin to CPUs $SERVER_CPU/$CLIENT_CPU; running unpinned (figures will be noisier)"
    SERVER_CPU=""
    CLIENT_CPU=""
fi
if [ -n "$SERVER_CPU" ] && [ "$SERVER_CPU" = "$CLIENT_CPU" ]; then
    log "warning: server and benchmark share CPU $SERVER_CPU"
fi

lib_init
read -ra basalt_extra <<<"$BASALT_ARGS"
read -ra redis_extra <<<"$REDIS_ARGS"
read -ra common <<<"$COMMON_ARGS"

redis_port=$(free_port)
basalt_port=$(free_port)
redis_tls=() basalt_tls=() bench_tls=()
if [ -n "$TLS" ]; then
    command -v openssl >/dev/null || die "TLS=1 needs openssl"
    pki="$LIB_TMP/pki"
    mkdir -p "$pki"
    (
        cd "$pki"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
            -keyout ca.key -out ca.crt
        for who in server client; do
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$who" -keyout "$who.key" -out "$who.csr"
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\n' \
                "$([ $who = server ] && echo serverAuth || echo clientAuth)" >"$who.ext"
            openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile "$who.ext" -out "$who.crt"
        done
    ) >/dev/null 2>&1 || die "openssl could not make the test certificates"
    redis_tls_port=$(free_port)
    basalt_tls_port=$(free_port)
    tls_args=(--tls-cert-file "$pki/server.crt" --tls-key-file "$pki/server.key" --tls-ca-cert-file "$pki/ca.crt")
    redis_tls=(--tls-port "$redis_tls_port" "${tls_args[@]}")
    basalt_tls=(--tls-port "$basalt_tls_port" "${tls_args[@]}")
    bench_tls=(--tls --cacert "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key")
fi
start_server redis "$redis_port" "$SERVER_CPU" "$REDIS_SERVER" --port "$redis_port" --save '' --appendonly no \
    "${common[@]}" "${redis_tls[@]}" "${redis_extra[@]}"
redis_pid=$SERVER_PID
start_server basalt "$basalt_port" "$SERVER_CPU" "$BASALT" --port "$basalt_port" --save '' --appendonly no \
    "${common[@]}" "${basalt_tls[@]}" "${basalt_extra[@]}"
basalt_pid=$SERVER_PID
wait_for_ping "$redis_port" redis 10 "$redis_pid" || die "redis-server did not start"
wait_for_ping "$basalt_port" basalt 20 "$basalt_pid" || die "basalt did not start"

port_of() { if [ "$1" = redis ]; then echo "$redis_port"; else echo "$basalt_port"; fi; }
# The port redis-benchmark measures: the TLS one with TLS=1.
bench_port_of() {
    if [ -z "$TLS" ]; then port_of "$1"; elif [ "$1" = redis ]; then echo "$redis_tls_port"; else echo "$basalt_tls_port"; fi
}

# The script for the evalsha test, loaded into both (same body, same SHA1).
SCRIPT_SHA=""
if [[ ",$TESTS," == *,evalsha,* ]]; then
    for port in "$redis_port" "$basalt_port"; do
        SCRIPT_SHA=$(redis-cli -p "$port" SCRIPT LOAD "$SCRIPT") || die "SCRIPT LOAD failed on port $port"
    done
    [[ "$SCRIPT_SHA" =~ ^[0-9a-f]{40}$ ]] || die "SCRIPT LOAD answered '$SCRIPT_SHA'"
fi
pid_of() { if [ "$1" = redis ]; then echo "$redis_pid"; else echo "$basalt_pid"; fi; }

RESULTS="$LIB_TMP/results.txt" # server pipeline round test rps p99_ms
: >"$RESULTS"
FAILED=""

# bench SERVER PIPELINE REQUESTS OUTFILE [TESTS]: one redis-benchmark run, CSV into OUTFILE.
# Fails (status 1) when redis-benchmark fails, e.g. on an error reply; exits the script when
# the server died.
bench() {
    local server="$1" p="$2" n="$3" out="$4" tests="${5:-$TESTS}" pin=() extra=() what=()
    if [ "$tests" = evalsha ]; then
        what=(EVALSHA "$SCRIPT_SHA" 1 script:counter)
    else
        # (evalsha in a list, as in the warm-up, is skipped: -t ignores unknown names)
        what=(-t "$tests")
    fi
    [ -n "$CLIENT_CPU" ] && pin=(taskset -c "$CLIENT_CPU")
    [ -n "$KEYSPACE" ] && extra+=(-r "$KEYSPACE")
    [ -n "$DATA_SIZE" ] && extra+=(-d "$DATA_SIZE")
    if ! run_child timeout "$BENCH_TIMEOUT" "${pin[@]}" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$(bench_port_of "$server")" \
        "${bench_tls[@]}" -q -c "$CLIENTS" -n "$n" -P "$p" --csv "${extra[@]}" "${what[@]}" >"$out" 2>"$out.err"; then
        log "redis-benchmark -t $tests -P $p against $server failed: $(tr '\n' ' ' <"$out.err" | cut -c1-300)"
        kill -0 "$(pid_of "$server")" 2>/dev/null || { tail -n 30 "$LIB_TMP/$server.log" >&2; die "$server died"; }
        return 1
    fi
    kill -0 "$(pid_of "$server")" 2>/dev/null || { tail -n 30 "$LIB_TMP/$server.log" >&2; die "$server died"; }
}

# redis-benchmark 7.0 --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
# "p95_latency_ms","p99_latency_ms","max_latency_ms". Test names are normalised
# ("MSET (10 keys)" -> MSET) and the LPUSH that fills the list for LRANGE is dropped.
parse_csv() {
    local server="$1" p="$2" round="$3" file="$4"
    awk -F, -v s="$server" -v p="$p" -v r="$round" '
        { for (i = 1; i <= NF; i++) gsub(/"/, "", $i) }
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 ~ /needed to benchmark/ { next }
        { name = $1; sub(/ .*/, "", name); print s, p, r, name, $col["rps"], $col["p99_latency_ms"] }
    ' "$file"
}

n_tests=$(tr ',' '\n' <<<"$TESTS" | grep -c .)
log "settings: ${TLS:+TLS (mTLS), }$CLIENTS clients, $REQUESTS requests (x min(P, $PIPELINE_SCALE) pipelined), pipelines {$PIPELINES}, tests $TESTS, $ROUNDS rounds${KEYSPACE:+, -r $KEYSPACE}${DATA_SIZE:+, -d $DATA_SIZE}"

if [ "$WARMUP" != 0 ]; then
    warm=$((REQUESTS / 10 < 1000 ? 1000 : REQUESTS / 10))
    for server in redis basalt; do
        bench "$server" 16 "$warm" "$LIB_TMP/warmup.csv" || true
    done
    log "warm-up done"
fi

IFS=, read -ra test_list <<<"$TESTS"
turn=0
for ((round = 1; round <= ROUNDS; round++)); do
    for p in $PIPELINES; do
        for t in "${test_list[@]}"; do
            if ((turn++ % 2)); then order=(basalt redis); else order=(redis basalt); fi
            for server in "${order[@]}"; do
                f="$LIB_TMP/$server.P$p.r$round.$t.csv"
                if bench "$server" "$p" "$(requests_for "$p")" "$f" "$t"; then
                    parse_csv "$server" "$p" "$round" "$f" >>"$RESULTS"
                else
                    # Shown as "error" in the table; the script then exits 1.
                    echo "$server $p $round ${t^^} ERR ERR" >>"$RESULTS"
                    FAILED=1
                fi
            done
        done
        for server in redis basalt; do
            got=$(awk -v s="$server" -v p="$p" -v r="$round" '$1 == s && $2 == p && $3 == r' "$RESULTS" | wc -l)
            [ "$got" -ge "$n_tests" ] || die "$server P=$p round $round: expected $n_tests results, got $got"
            log "round $round/$ROUNDS P=$p $(printf '%-6s' "$server"): $(awk -v s="$server" -v p="$p" -v r="$round" \
                '$1 == s && $2 == p && $3 == r { printf "%s=%s ", $4, ($5 == "ERR" ? "ERR" : sprintf("%.0f", $5)) }' "$RESULTS")"
        done
    done
done

# Medians per (test, pipeline, server), in the order redis-benchmark printed the tests.
TABLE="$LIB_TMP/table.txt" # test p redis_rps basalt_rps ratio redis_p99 basalt_p99
awk '
    function med(key,   n, i, j, t, a) {
        if (vals[key] ~ /ERR/ || vals[key] == "") return "error"
        n = split(vals[key], a, " ")
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function num(v, f) { return v == "error" ? v : sprintf(f, v) }
    {
        row = $4 SUBSEP $2
        if (!(row in seen)) { seen[row] = 1; order[++rows] = row }
        vals[row SUBSEP $1 SUBSEP "rps"] = vals[row SUBSEP $1 SUBSEP "rps"] " " $5
        vals[row SUBSEP $1 SUBSEP "p99"] = vals[row SUBSEP $1 SUBSEP "p99"] " " $6
        if ($5 != "ERR") { got[row SUBSEP $3 SUBSEP $1] = $5; rounds[row SUBSEP $3] = 1 }
    }
    END {
        for (i = 1; i <= rows; i++) {
            split(order[i], k, SUBSEP)
            rr = med(order[i] SUBSEP "redis" SUBSEP "rps"); br = med(order[i] SUBSEP "basalt" SUBSEP "rps")
            rp = med(order[i] SUBSEP "redis" SUBSEP "p99"); bp = med(order[i] SUBSEP "basalt" SUBSEP "p99")
            ratio = (rr == "error" || br == "error" || rr <= 0) ? "-" : sprintf("%.2f", br / rr)
            # The same round ran both servers one after the other: the median of the
            # per-round ratios cancels slow stretches that hit a whole round.
            pairs = ""; n = 0; wins = 0
            for (key in rounds) {
                split(key, rk, SUBSEP)
                if (rk[1] SUBSEP rk[2] != order[i]) continue
                r_ = got[key SUBSEP "redis"]; b_ = got[key SUBSEP "basalt"]
                if (r_ == "" || b_ == "" || r_ <= 0) continue
                pairs = pairs " " b_ / r_; n++; if (b_ >= r_) wins++
            }
            vals["pairs"] = pairs
            paired = n ? sprintf("%.2f", med("pairs")) : "-"
            printf "%s %s %s %s %s %s %s %s %s\n", k[1], k[2], num(rr, "%.0f"), num(br, "%.0f"), ratio, paired, wins "/" n, num(rp, "%.3f"), num(bp, "%.3f")
        }
    }
' "$RESULTS" | sort -s -k2,2n >"$TABLE"

# Round-to-round spread ((max - min) / median of req/s), the noise floor of these figures.
spread() {
    awk -v s="$1" '
        $1 == s && $5 != "ERR" { k = $4 SUBSEP $2; n[k]++; v[k, n[k]] = $5 }
        END {
            worst = 0
            for (k in n) {
                if (n[k] < 2) continue
                lo = hi = v[k, 1]; m = n[k]
                for (i = 2; i <= m; i++) { if (v[k, i] < lo) lo = v[k, i]; if (v[k, i] > hi) hi = v[k, i] }
                # median
                for (i = 1; i <= m; i++) a[i] = v[k, i]
                for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
                med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
                if (med > 0 && (hi - lo) / med > worst) worst = (hi - lo) / med
            }
            printf "%.0f%%", worst * 100
        }' "$RESULTS"
}

header=(test P "redis req/s" "basalt req/s" "basalt/redis" "paired" "rounds won" "redis p99 ms" "basalt p99 ms")
{
    printf '\n%-12s %3s %13s %13s %13s %7s %10s %13s %13s\n' "${header[@]}"
    while read -r t p rr br ratio paired wins rp bp; do
        printf '%-12s %3s %13s %13s %13s %7s %10s %13s %13s\n' "$t" "$p" "$rr" "$br" "$ratio" "$paired" "$wins" "$rp" "$bp"
    done <"$TABLE"
    if [ "$ROUNDS" -gt 1 ]; then
        printf '\nmedians of %s rounds; paired: median of the per-round ratios (each round runs both servers back to back); rounds won: rounds where basalt >= redis; largest round-to-round spread of req/s: redis %s, basalt %s\n' \
            "$ROUNDS" "$(spread redis)" "$(spread basalt)"
    fi
}

if [ -n "$OUT" ]; then
    {
        echo "## basalt vs redis-server ($(date -u '+%Y-%m-%d %H:%M UTC'))"
        echo
        echo "- redis: \`$REDIS_SERVER${REDIS_ARGS:+ $REDIS_ARGS}\` ($("$REDIS_SERVER" --version | awk '{print $3}'))"
        echo "- basalt: \`$BASALT${BASALT_ARGS:+ $BASALT_ARGS}\`$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null | sed 's/^/ at /')"
        echo "- both: \`--save '' --appendonly no $COMMON_ARGS\`, pinned to CPU ${SERVER_CPU:-(unpinned)}; redis-benchmark on CPU ${CLIENT_CPU:-(unpinned)}"
        echo "- \`redis-benchmark -q -c $CLIENTS -n $REQUESTS (x min(P, $PIPELINE_SCALE)) -P {${PIPELINES// /,}} -t $TESTS --csv${KEYSPACE:+ -r $KEYSPACE}${DATA_SIZE:+ -d $DATA_SIZE}\`, median of $ROUNDS alternating rounds"
        [ "$ROUNDS" -gt 1 ] && echo "- largest round-to-round spread of req/s: redis $(spread redis), basalt $(spread basalt)"
        echo
        echo "| test | P | redis req/s | basalt req/s | basalt/redis | paired | rounds won | redis p99 ms | basalt p99 ms |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        while read -r t p rr br ratio paired wins rp bp; do
            echo "| $t | $p | $rr | $br | $ratio | $paired | $wins | $rp | $bp |"
        done <"$TABLE"
    } >"$OUT"
    log "wrote $OUT"
fi

if [ -n "$FAILED" ]; then
    log "some runs failed (see above); their cells say \"error\""
    exit 1
fi
