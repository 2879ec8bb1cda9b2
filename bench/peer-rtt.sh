#!/usr/bin/env bash
# bench/peer-rtt.sh — the peer round trip, measured through the client: c1x1 setData p50 on a
# 3-server zabd ensemble (loopback), the client on the leader (one peer round trip per write:
# PROPOSAL out, ACK back) and on a follower (two: the forwarded request and the COMMIT on top).
#
# Usage: bench/peer-rtt.sh [--rounds N] [--duration SECONDS] NAME=ZABD [NAME=ZABD ...]
#   e.g. bench/peer-rtt.sh before=/tmp/zabd-old after=target/release/zabd
# Each round runs every binary once, in turn (alternating the order), on a fresh ensemble;
# the medians over rounds are printed with the 1-minute load average before and after each
# run, and each run's write-path breakdown (zabd's /latency, stage by stage) on stderr.
# ZAB_BENCH (default: target/release/zab-bench) is the load generator.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
duration=10
bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *=*) bins+=("$1"); shift ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done
[ ${#bins[@]} -gt 0 ] || { echo "give at least one NAME=ZABD" >&2; exit 64; }
BENCH=${ZAB_BENCH:-${CARGO_TARGET_DIR:-target}/release/zab-bench}
[ -x "$BENCH" ] || { echo "no load generator at $BENCH (cargo build --release -p zab-bench)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/zab-peer-rtt.XXXXXX)
BASE=${PEER_RTT_BASE:-25180} # clients 25181-3, quorum 25281-3, election 25381-3, metrics 25481-3: loopback only
SERVERS="127.0.0.1:$((BASE+1)),127.0.0.1:$((BASE+2)),127.0.0.1:$((BASE+3))"
METRICS="127.0.0.1:$((BASE+301)),127.0.0.1:$((BASE+302)),127.0.0.1:$((BASE+303))"
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop; rm -rf "$WORK"' EXIT

start() { # zabd
  rm -rf "${WORK:?}/n"*
  for i in 1 2 3; do
    local d=$WORK/n$i
    mkdir -p "$d/data"
    echo $i > "$d/data/myid"
    {
      echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"
      echo "dataDir=$d/data"; echo "clientPort=$((BASE+i))"; echo "clientPortAddress=127.0.0.1"
      echo "maxClientCnxns=0"; echo "4lw.commands.whitelist=*"; echo "admin.enableServer=false"
      for j in 1 2 3; do echo "server.$j=127.0.0.1:$((BASE+100+j)):$((BASE+200+j))"; done
    } > "$d/zoo.cfg"
    RUST_LOG=warn nohup "$1" --config "$d/zoo.cfg" --metrics-addr "127.0.0.1:$((BASE+300+i))" \
      > "$d/console.out" 2>&1 < /dev/null &
    pids+=($!)
  done
  "$BENCH" wait-serving -s "$SERVERS" --one-leader --timeout 120s > /dev/null
}

p50_ms() { # server
  local out=$WORK/run.json
  # The write-path breakdown of the run (zabd's /latency before and after) goes to stderr.
  "$BENCH" run -s "$1" -w set -c 1 -d 1 --warmup 2s --duration "${duration}s" \
    --keys 100 --payload 1024 --no-progress -o "$out" --breakdown "$METRICS" | sed -n '2,$p' >&2
  python3 -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["latency"]["p50_us"] / 1000))' "$out"
}

declare -A results
for r in $(seq 1 "$rounds"); do
  order=("${bins[@]}")
  if [ $((r % 2)) = 0 ]; then order=($(printf '%s\n' "${bins[@]}" | tac)); fi
  for nb in "${order[@]}"; do
    name=${nb%%=*}; zabd=${nb#*=}
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    start "$zabd"
    leader=$("$BENCH" leader -s "$SERVERS")
    follower=$(( leader % 3 + 1 ))
    on_leader=$(p50_ms "127.0.0.1:$((BASE+leader))")
    on_follower=$(p50_ms "127.0.0.1:$((BASE+follower))")
    stop
    load_after=$(cut -d' ' -f1 /proc/loadavg)
    echo "round $r $name: setData c1x1 p50 via leader $on_leader ms, via follower $on_follower ms (load $load_before -> $load_after)"
    results[$name]+="$on_leader,$on_follower "
  done
done
for nb in "${bins[@]}"; do
  name=${nb%%=*}
  python3 - "$name" ${results[$name]} <<'EOF'
import statistics, sys
name, runs = sys.argv[1], [tuple(map(float, r.split(","))) for r in sys.argv[2:]]
lead = statistics.median(r[0] for r in runs)
foll = statistics.median(r[1] for r in runs)
print(f"{name}: median over {len(runs)} rounds: setData c1x1 p50 via leader {lead:.3f} ms, via follower {foll:.3f} ms")
EOF
done
echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
