#!/bin/sh
# 3-node cluster write benchmark and leader failover; prints a markdown table
# (see bench/RESULTS.md, "3-node cluster").
#
#   sh bench/cluster.sh        (or: make bench-cluster)
#
# In one run:
#   1. a --single node on a free 127.0.0.1 port: loadgen write workload
#      (--workload write --setup, 1 set_entity/tx, 100-byte values) = baseline;
#   2. three nodes `--cluster 3 --peers A,B,C` (own data dirs under $OUT,
#      --metrics off, INFERADB__LEDGER__ENV_FILE= so no env file is read);
#      waits (bounded) until all three report 3 voters and the same leader
#      (AdminService/GetClusterInfo through tests/tools/grpcurl), then the same
#      write workload against the leader and against a follower (forwarded);
#   3. bench/failover.py: its own 3-node cluster, 4 writers, kill -9 of the
#      leader, write gap per round (FAILOVER_ROUNDS rounds).
# Knobs (environment):
#   BUILD=build DURATION=10 WARMUP=2 CONCURRENCY=64 CONNECTIONS=4
#   FAILOVER_ROUNDS=3 SKIP_FAILOVER=1 PYTHON=/usr/bin/python3
#   FORM_TIMEOUT=60 (seconds to wait for the cluster to form)
# Raw JSON lines and server logs stay in $OUT (default: a temp dir, printed).
set -eu

BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-64}
CONNECTIONS=${CONNECTIONS:-4}
FAILOVER_ROUNDS=${FAILOVER_ROUNDS:-3}
FORM_TIMEOUT=${FORM_TIMEOUT:-60}
PYTHON=${PYTHON:-/usr/bin/python3}

HERE=$(cd "$(dirname "$0")" && pwd)
LEDGER=$BUILD/inferadb-ledger
LOADGEN=$BUILD/bench/loadgen
GRPCURL=$HERE/../tests/tools/grpcurl
for b in "$LEDGER" "$LOADGEN"; do
    [ -x "$b" ] || { echo "cluster.sh: $b missing: run 'make build' first" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "cluster.sh: jq is required" >&2; exit 1; }

OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/ldg-bench-cluster.XXXXXX")}
mkdir -p "$OUT"
PIDS=
FAILOVER_PID=
stop_all() { # SIGTERM every started server, wait for each
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    PIDS=
}
cleanup() {
    if [ -n "$FAILOVER_PID" ]; then
        kill "$FAILOVER_PID" 2>/dev/null || true
        wait "$FAILOVER_PID" 2>/dev/null || true
    fi
    stop_all
    rm -rf "$OUT/single/data" "$OUT/n0/data" "$OUT/n1/data" "$OUT/n2/data"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Four distinct free ports (all bound at once so they differ).
PORTS=$("$PYTHON" -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
# shellcheck disable=SC2086
set -- $PORTS
SINGLE=127.0.0.1:$1
A0=127.0.0.1:$2
A1=127.0.0.1:$3
A2=127.0.0.1:$4
PEERS=$A0,$A1,$A2

wait_health() { # addr, pid, log
    i=0
    until "$LOADGEN" --target "$1" --workload health --connections 1 --concurrency 1 \
            --duration 0.1 --warmup 0 --timeout-ms 1000 >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -ge 150 ] || ! kill -0 "$2" 2>/dev/null; then
            echo "cluster.sh: server $1 did not come up; log in $3" >&2
            exit 1
        fi
        sleep 0.2
    done
}

run_write() { # name, target
    echo "cluster.sh: loadgen write -> $2 ($1)" >&2
    "$LOADGEN" --target "$2" --workload write --setup --connections "$CONNECTIONS" \
        --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" \
        --value-bytes 100 >"$OUT/$1.txt" 2>"$OUT/$1.err" || true
    tail -n 1 "$OUT/$1.txt" >"$OUT/$1.json"
}

# ---- 1. single-node baseline ----
mkdir -p "$OUT/single"
INFERADB__LEDGER__ENV_FILE='' "$LEDGER" --single --data "$OUT/single/data" --listen "$SINGLE" \
    --metrics off >"$OUT/single/server.log" 2>&1 &
SPID=$!
PIDS=$SPID
wait_health "$SINGLE" "$SPID" "$OUT/single/server.log"
run_write single "$SINGLE"
stop_all

# ---- 2. three nodes ----
N=0
for a in $A0 $A1 $A2; do
    mkdir -p "$OUT/n$N"
    INFERADB__LEDGER__ENV_FILE='' "$LEDGER" --cluster 3 --peers "$PEERS" --peers-poll 0.2 \
        --data "$OUT/n$N/data" --listen "$a" --metrics off >"$OUT/n$N/server.log" 2>&1 &
    PIDS="$PIDS $!"
    N=$((N + 1))
done

# Until every node answers GetClusterInfo with 3 voters and the same leader id.
echo "cluster.sh: waiting for 3 voters and one leader (up to ${FORM_TIMEOUT}s)" >&2
T0=$(date +%s)
LEADER=
while :; do
    for p in $PIDS; do
        kill -0 "$p" 2>/dev/null || {
            echo "cluster.sh: a node exited; logs in $OUT/n*/server.log" >&2
            exit 1
        }
    done
    shapes=
    for a in $A0 $A1 $A2; do
        s=$("$GRPCURL" -plaintext -max-time 2 "$a" ledger.v1.AdminService/GetClusterInfo \
                2>/dev/null | jq -r '
            ([.members[]? | select(.role == "NODE_ROLE_VOTER")] | length | tostring) + " " +
            (.leaderId.id // "none") + " " +
            ([.members[]? | select(.isLeader) | .address][0] // "none")' 2>/dev/null) ||
            s=error
        [ -n "$s" ] || s=error
        shapes="$shapes$s
"
    done
    uniq=$(printf '%s' "$shapes" | sort -u)
    if [ "$(printf '%s\n' "$uniq" | wc -l)" -eq 1 ]; then
        # shellcheck disable=SC2086
        set -- $uniq
        if [ "${1:-}" = 3 ] && [ "${2:-none}" != none ] && [ "${3:-none}" != none ]; then
            LEADER=$3
            break
        fi
    fi
    if [ $(($(date +%s) - T0)) -ge "$FORM_TIMEOUT" ]; then
        echo "cluster.sh: cluster not formed after ${FORM_TIMEOUT}s: $(printf '%s' "$shapes" | tr '\n' ';')" >&2
        exit 1
    fi
    sleep 0.2
done
FORM_S=$(($(date +%s) - T0))
FOLLOWER=
for a in $A0 $A1 $A2; do
    if [ "$a" != "$LEADER" ]; then FOLLOWER=$a; break; fi
done
case " $A0 $A1 $A2 " in
*" $LEADER "*) ;;
*) echo "cluster.sh: leader address $LEADER is not one of $PEERS" >&2; exit 1 ;;
esac
echo "cluster.sh: formed in about ${FORM_S}s; leader $LEADER, follower $FOLLOWER" >&2
run_write leader "$LEADER"
run_write follower "$FOLLOWER"
stop_all

# ---- 3. failover ----
if [ -z "${SKIP_FAILOVER:-}" ]; then
    echo "cluster.sh: failover.py, $FAILOVER_ROUNDS rounds" >&2
    "$PYTHON" "$HERE/failover.py" --build "$BUILD" --rounds "$FAILOVER_ROUNDS" \
        >"$OUT/failover.txt" 2>"$OUT/failover.err" &
    FAILOVER_PID=$!
    wait "$FAILOVER_PID" || true
    FAILOVER_PID=
    tail -n 1 "$OUT/failover.txt" >"$OUT/failover.json"
fi

# ---- table ----
ops() { jq -r '.ops_per_sec // 0' "$OUT/$1.json" 2>/dev/null || echo 0; }
ratio() { # a / b, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.3f", a / b; else print "n/a" }'
}
BASE=$(ops single)
row() { # name, label
    f=$OUT/$1.json
    if ! jq -e . "$f" >/dev/null 2>&1; then
        echo "| $2 | n/a | | | | | no output (see $OUT/$1.err) |"
        return
    fi
    jq -r --arg title "$2" --arg ratio "$(ratio "$(ops "$1")" "$BASE")" '
        "| \($title) | \(.ops_per_sec) | \($ratio) | \(.p50_us) | \(.p99_us) | \(.p999_us) | " +
        (if .failure != "" then "FAILED: \(.failure)"
         elif .errors > 0 then "errors: " + ([.errors_by_code | to_entries[] | "\(.key)=\(.value)"] | join(" "))
         elif .write_rejected > 0 then "rejected: \(.write_rejected)"
         else "0" end) + " |"' "$f"
}

echo
echo "Load: loadgen write (1 set_entity/tx, 100-byte values), $CONNECTIONS connections, $CONCURRENCY outstanding calls, ${DURATION}s measured after ${WARMUP}s warmup; all nodes on 127.0.0.1 of this machine."
echo
echo "| target | writes/s | vs single | p50 us | p99 us | p999 us | errors |"
echo "|---|---|---|---|---|---|---|"
row single "single node (--single, baseline)"
row leader "3-node cluster, sent to the leader"
row follower "3-node cluster, sent to a follower (forwarded)"
echo
echo "| ratio | value |"
echo "|---|---|"
echo "| follower (forwarded) / leader writes/s | $(ratio "$(ops follower)" "$(ops leader)") |"

if [ -z "${SKIP_FAILOVER:-}" ]; then
    echo
    f=$OUT/failover.json
    if jq -e '.rounds' "$f" >/dev/null 2>&1; then
        echo "Leader failover (bench/failover.py: 3 nodes, 4 writers, kill -9 of the leader after 2 s of load; goal: gap < 2 s):"
        echo
        echo "| round | killed | gap: last ack before -> first ack of a call sent after, s | kill -> that ack, s | kill -> new leader agreed, s | acks before | in flight at kill, acked after | acks after |"
        echo "|---|---|---|---|---|---|---|---|"
        jq -r '.rounds[] | "| \(.round) | \(.killed) | \(.gap_s) | \(.kill_to_first_ack_s) | \(.election_s) | \(.acks_before) | \(.acks_drained) | \(.acks_after) |"' "$f"
        echo
        jq -r '"| failover | value |", "|---|---|",
            "| rounds completed | \(.rounds | length) of \(.requested) |",
            "| max gap, s | \(.max_gap_s) |", "| mean gap, s | \(.mean_gap_s) |",
            "| max gap < 2 s | \(if .max_gap_s != null and .max_gap_s < 2 and (.rounds | length) == .requested then "yes" else "no" end) |"' "$f"
    else
        echo "failover: no output (see $OUT/failover.err)"
    fi
fi
echo
echo "Raw output: $OUT"
