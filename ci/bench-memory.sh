#!/usr/bin/env bash
# ci/bench-memory.sh — resident memory of zabd beside Apache ZooKeeper 3.8 at equal data, and
# the p99 write latency while snapshots of a large tree are taken against none (issue 12;
# README "Memory"). NOT run by CI (.ci/run): minutes to an hour.
#
# For each system in turn (the other stopped): a 3-server ensemble on 127.0.0.1, fresh data
# directories; VmRSS of each server idle, after `zab-bench populate` of --znodes nodes of
# --payload bytes under --parents parents (then again at --more total, if given), after --sets
# setData (100 B, 1,000 keys, 32 sessions x 16 in flight), and of a follower killed with -9
# and started again on that state. Then, on the same data, the ensemble restarted twice:
# snapCount 1e9 (no snapshot) and --snap-count (a snapshot of the whole tree every that many
# transactions), each with a --lat-secs write run (`zab-bench run -w set`, 8 sessions x 1);
# the p99s are compared. The 1-minute load average is printed beside every figure.
#
# Usage: ci/bench-memory.sh [--znodes N] [--more N] [--parents P] [--payload B] [--sets N]
#                           [--snap-count N] [--lat-secs S] [--systems "zabd zookeeper"]
#                           [--out FILE]
# Environment: CARGO_TARGET_DIR, BENCH_WORK (scratch, default /tmp/zab-bench-mem), ZK_HEAP
# (default 1000m, zkServer.sh's), BENCH_NO_BUILD=1 (use the release binaries as they are).
# Ports (loopback only): zabd 23501-23503 (quorum 23601+, election 23701+, metrics 23801+);
# ZooKeeper 23511-23513 (quorum 23611+, election 23711+).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

znodes=100000
more=0
parents=1000
payload=100
sets=1000000
snap_count=2000
lat_secs=10
systems="zabd zookeeper"
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --znodes) znodes=$2; shift ;;
    --more) more=$2; shift ;;
    --parents) parents=$2; shift ;;
    --payload) payload=$2; shift ;;
    --sets) sets=$2; shift ;;
    --snap-count) snap_count=$2; shift ;;
    --lat-secs) lat_secs=$2; shift ;;
    --systems) systems=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

WORK=${BENCH_WORK:-/tmp/zab-bench-mem}
ZK_HEAP=${ZK_HEAP:-1000m}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ZABD=$TARGET/release/zabd
BENCH=$TARGET/release/zab-bench
ZK_CP=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
TICK=2000

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq zookeeper
fi
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building zabd and zab-bench (release)"
  cargo build --release --locked -p zab-server -p zab-bench
fi

base_port() { [ "$1" = zabd ] && echo 23500 || echo 23510; }
servers_of() { local b; b=$(base_port "$1"); echo "127.0.0.1:$((b+1)),127.0.0.1:$((b+2)),127.0.0.1:$((b+3))"; }
declare -A PID

write_configs() { # system snapCount fresh(1|0)
  local sys=$1 snap=$2 fresh=$3 b; b=$(base_port "$sys")
  [ "$fresh" = 1 ] && rm -rf "${WORK:?}/$sys"
  for i in 1 2 3; do
    local d=$WORK/$sys/n$i
    mkdir -p "$d/data" "$d/log"
    echo $i > "$d/data/myid"
    {
      echo "tickTime=$TICK"
      echo "initLimit=30"
      echo "syncLimit=10"
      echo "snapCount=$snap"
      echo "dataDir=$d/data"
      echo "clientPort=$((b+i))"
      echo "clientPortAddress=127.0.0.1"
      echo "maxClientCnxns=0"
      echo "4lw.commands.whitelist=*"
      if [ "$sys" = zookeeper ]; then
        echo "admin.enableServer=false"
        echo "forceSync=yes"
      fi
      for j in 1 2 3; do echo "server.$j=127.0.0.1:$((b+100+j)):$((b+200+j))"; done
    } > "$d/zoo.cfg"
  done
}

start_node() { # system i
  local sys=$1 i=$2 d=$WORK/$1/n$2
  if [ "$sys" = zabd ]; then
    RUST_LOG=info NO_COLOR=1 nohup "$ZABD" --config "$d/zoo.cfg" \
      --metrics-addr "127.0.0.1:$(( $(base_port zabd) + 300 + i ))" >>"$d/log/console.out" 2>&1 </dev/null &
  else
    nohup java -Xmx"$ZK_HEAP" -cp "$ZK_CP" -Dzookeeper.log.dir="$d/log" \
      -Dzookeeper.root.logger=INFO,CONSOLE \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" >>"$d/log/console.out" 2>&1 </dev/null &
  fi
  PID[$sys$i]=$!
}

stop_node() { # system i
  local p=${PID[$1$2]:-}
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  PID[$1$2]=""
}

start_ensemble() { # system snapCount fresh
  write_configs "$1" "$2" "$3"
  for i in 1 2 3; do start_node "$1" $i; done
  "$BENCH" wait-serving -s "$(servers_of "$1")" --one-leader --timeout 600s >/dev/null
}

stop_ensemble() { for i in 1 2 3; do stop_node "$1" $i; done; }

cleanup() {
  for sys in zabd zookeeper; do stop_ensemble $sys; done
  rm -rf "${WORK:?}"
}
trap cleanup EXIT

load1() { cut -d' ' -f1 /proc/loadavg; }
rss_mib() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
rss_all() { # system -> "a / b / c"
  local sys=$1 r=()
  for i in 1 2 3; do r+=("$(rss_mib "${PID[$sys$i]}")"); done
  echo "${r[0]} / ${r[1]} / ${r[2]}"
}

mkdir -p "$WORK"
RES=$WORK/results.tsv
: >"$RES"
row() { # system what value
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(load1)" >>"$RES"
  log "$1: $2: $3 (load $(load1))"
}

# Snapshots written so far by the system's servers, from their logs.
snapshots_logged() { # system
  local pat='snapshot written'; [ "$1" = zookeeper ] && pat='Snapshotting:'
  cat "$WORK/$1"/n*/log/*.out "$WORK/$1"/n*/log/*.log 2>/dev/null | grep -c "$pat" || true
}

p99_of() { # json file -> p99 ms
  awk -F': ' '/"p99_us"/ { gsub(",", "", $2); printf "%.1f", $2 / 1000; exit }' "$1"
}

bench_memory() { # system
  local sys=$1 servers; servers=$(servers_of "$sys")
  start_ensemble "$sys" 100000 1
  sleep 3
  row "$sys" "RSS per server (MiB), idle" "$(rss_all "$sys")"
  log "$sys: populate $znodes znodes of $payload B under $parents parents"
  "$BENCH" populate -s "$servers" --parents "$parents" --znodes "$znodes" --payload "$payload" >/dev/null
  sleep 3
  row "$sys" "RSS per server (MiB), $znodes znodes" "$(rss_all "$sys")"
  if [ "$more" -gt "$znodes" ]; then
    log "$sys: populate up to $more znodes"
    "$BENCH" populate -s "$servers" --parents "$parents" --znodes "$more" --payload "$payload" >/dev/null
    sleep 3
    row "$sys" "RSS per server (MiB), $more znodes" "$(rss_all "$sys")"
  fi
  log "$sys: $sets setData"
  "$BENCH" run -s "$servers" -w set --ops "$sets" -c 32 -d 16 --payload "$payload" --keys 1000 \
    --warmup 0s --no-progress -o "$WORK/sets-$sys.json" >&2
  sleep 3
  row "$sys" "RSS per server (MiB), then $sets setData" "$(rss_all "$sys")"
  local l f b; l=$("$BENCH" leader -s "$servers"); f=$(( l % 3 + 1 )); b=$(base_port "$sys")
  log "$sys: kill -9 of follower $f, then start it"
  kill -KILL "${PID[$sys$f]}"; wait "${PID[$sys$f]}" 2>/dev/null || true
  start_node "$sys" "$f"
  "$BENCH" wait-serving -s "127.0.0.1:$((b+f))" --timeout 600s >/dev/null
  sleep 3
  row "$sys" "RSS of the restarted follower (MiB)" "$(rss_mib "${PID[$sys$f]}")"
  stop_ensemble "$sys"

  # Write latency on this tree: no snapshot during the run, then one every $snap_count txns.
  local p99s=()
  for snap in 1000000000 "$snap_count"; do
    local before after
    start_ensemble "$sys" "$snap" 0
    sleep 2
    before=$(snapshots_logged "$sys")
    "$BENCH" run -s "$servers" -w set --duration "${lat_secs}s" -c 8 -d 1 --payload "$payload" \
      --keys 1000 --no-setup --warmup 1s --no-progress -o "$WORK/lat-$sys-$snap.json" >&2
    after=$(snapshots_logged "$sys")
    p99s+=("$(p99_of "$WORK/lat-$sys-$snap.json")")
    row "$sys" "p99 setData (ms), snapCount=$snap ($((after - before)) snapshots written by the 3 servers)" "${p99s[-1]}"
    stop_ensemble "$sys"
  done
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
for sys in $systems; do bench_memory "$sys"; done

{
  echo "ci/bench-memory.sh --znodes $znodes --more $more --parents $parents --payload $payload --sets $sets --snap-count $snap_count --lat-secs $lat_secs"
  echo "started $started, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores"
  echo
  echo "| system | figure | value | load (1 min) |"
  echo "|---|---|---|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$RES"
} | if [ -n "$out" ]; then tee "$out"; else cat; fi
