#!/bin/sh
# Run the benchmarks and print a markdown table (see bench/RESULTS.md).
#
#   sh bench/run.sh            (or: make bench)
#
# Starts a single-node server on a free 127.0.0.1 port with its data in a
# temp dir, runs loadgen workloads against it (health = transport baseline,
# write = 1 set_entity op per tx with 100-byte values, eventual reads of
# prefilled keys), stops it, then runs stateroot. Knobs (environment):
#   BUILD=build DURATION=10 WARMUP=2 CONCURRENCY=64 CONNECTIONS=4 KEYS=10000
#   STATEROOT_ARGS="" (e.g. "--blocks 200")  SKIP_STATEROOT=1
# Raw JSON lines and the server log stay in $OUT (default: a temp dir, printed).
set -eu

BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-64}
CONNECTIONS=${CONNECTIONS:-4}
KEYS=${KEYS:-10000}
STATEROOT_ARGS=${STATEROOT_ARGS:-}

LEDGER=$BUILD/inferadb-ledger
LOADGEN=$BUILD/bench/loadgen
STATEROOT=$BUILD/bench/stateroot
for b in "$LEDGER" "$LOADGEN" "$STATEROOT"; do
    [ -x "$b" ] || { echo "run.sh: $b missing: run 'make build' first" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "run.sh: jq is required" >&2; exit 1; }

OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/ldg-bench.XXXXXX")}
mkdir -p "$OUT"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$OUT/data"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TARGET=127.0.0.1:$PORT
"$LEDGER" --single --data "$OUT/data" --listen "$TARGET" --metrics off \
    >"$OUT/server.log" 2>&1 &
SERVER_PID=$!

# Wait (up to 30 s) until the server answers health calls.
i=0
until "$LOADGEN" --target "$TARGET" --workload health --connections 1 --concurrency 1 \
        --duration 0.1 --warmup 0 --timeout-ms 1000 >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 150 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "run.sh: server did not come up; log in $OUT/server.log" >&2
        exit 1
    fi
    sleep 0.2
done

COMMON="--target $TARGET --connections $CONNECTIONS --concurrency $CONCURRENCY \
--duration $DURATION --warmup $WARMUP --value-bytes 100 --keys $KEYS"
run_load() { # name, extra args...
    name=$1
    shift
    echo "run.sh: loadgen $name" >&2
    # shellcheck disable=SC2086
    "$LOADGEN" $COMMON "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err" || true
    tail -n 1 "$OUT/$name.txt" >"$OUT/$name.json"
}
run_load health --workload health
run_load write --workload write --setup
run_load read --workload read --setup

kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

if [ -z "${SKIP_STATEROOT:-}" ]; then
    echo "run.sh: stateroot $STATEROOT_ARGS" >&2
    # shellcheck disable=SC2086
    "$STATEROOT" $STATEROOT_ARGS >"$OUT/stateroot.txt" 2>"$OUT/stateroot.err" || true
    tail -n 1 "$OUT/stateroot.txt" >"$OUT/stateroot.json"
fi

# ---- table ----
ops() { jq -r '.ops_per_sec // 0' "$OUT/$1.json" 2>/dev/null || echo 0; }
ratio() { # a / b, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.3f", a / b; else print "n/a" }'
}
row() { # name, label
    f=$OUT/$1.json
    if ! jq -e . "$f" >/dev/null 2>&1; then
        echo "| $2 | n/a | | | | no output (see $OUT/$1.err) |"
        return
    fi
    jq -r --arg title "$2" '
        "| \($title) | \(.ops_per_sec) | \(.p50_us) | \(.p99_us) | \(.p999_us) | " +
        (if .failure != "" then "FAILED: \(.failure)"
         elif .errors > 0 then "errors: " + ([.errors_by_code | to_entries[] | "\(.key)=\(.value)"] | join(" "))
         else "0" end) + " |"' "$f"
}

echo
echo "Load: single node, $CONNECTIONS connections, $CONCURRENCY outstanding calls, ${DURATION}s measured after ${WARMUP}s warmup, 100-byte values, $KEYS keys."
echo
echo "| workload | ops/s | p50 us | p99 us | p999 us | errors |"
echo "|---|---|---|---|---|---|"
row health "health (HealthService/Check, transport baseline)"
row write "write (Write, 1 set_entity/tx)"
row read "read (Read, eventual)"
echo
H=$(ops health)
W=$(ops write)
R=$(ops read)
echo "| ratio | value |"
echo "|---|---|"
echo "| write ops/s / health ops/s | $(ratio "$W" "$H") |"
echo "| read ops/s / health ops/s | $(ratio "$R" "$H") |"
echo "| read ops/s / write ops/s | $(ratio "$R" "$W") |"

if [ -z "${SKIP_STATEROOT:-}" ]; then
    echo
    f=$OUT/stateroot.json
    if jq -e . "$f" >/dev/null 2>&1; then
        jq -r '
            "State root per block (\(.blocks) blocks of \(.ops_per_block) set_entity ops):",
            "",
            "| vault keys | prefill s | apply mean us | apply p50 us | apply p99 us | apply+commit mean us | crypto-only mean us |",
            "|---|---|---|---|---|---|---|",
            (.small, .large | "| \(.keys) | \(.prefill_s) | \(.apply.mean_us) | \(.apply.p50_us) | \(.apply.p99_us) | \(.apply_commit.mean_us) | \(.crypto.mean_us) |"),
            "",
            "| ratio large/small | value |",
            "|---|---|",
            "| apply mean | \(.ratio_apply_mean) |",
            "| apply p50 | \(.ratio_apply_p50) |",
            "| apply+commit mean | \(.ratio_apply_commit_mean) |",
            "| crypto-only mean | \(.ratio_crypto_mean) |"' "$f"
    else
        echo "stateroot: no output (see $OUT/stateroot.err)"
    fi
fi
echo
echo "Raw output: $OUT"
