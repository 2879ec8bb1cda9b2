#!/usr/bin/env bash
# ci/bench.sh — the side-by-side benchmark of zabd and Apache ZooKeeper 3.8 (README "Performance").
#
# Installs Apache ZooKeeper 3.8 from Debian (`zookeeper`), builds zabd and zab-bench in release,
# runs a 3-server ensemble of each system on loopback with the same settings, drives both with
# the same zab-bench workloads (systems alternate within each round), measures failover
# (kill -9 of the leader → first successful write), restart of a follower whose log holds N
# transactions, and each server's resident memory, then writes the report (medians over rounds,
# zabd/ZooKeeper ratios) and the plots. NOT run by CI (.ci/run): it takes minutes to an hour.
#
# Every round also measures the physical floor (`zab-bench floor`: 1 KiB append + fdatasync on
# the servers' disk, loopback round trip), and every zabd run records zabd's write-path latency
# breakdown (its metrics endpoints' /latency before and after the run); the report shows both,
# issue 20's targets per run, and the load average at the start of every run.
#
# Usage: ci/bench.sh [--quick | --full | --issue20] [--rounds N] [--duration SECONDS]
#                    [--restart-txns N] [--max-load L] [--load-wait SECONDS] [--leader-first]
#                    [--out DIR] [--keep]
#   --quick          one short round (~5 minutes with a warm build): tries the whole pipeline
#   --full           the default: 3 rounds, every workload, 1,000,000-transaction restart
#   --issue20        issue 20's table in under 10 minutes (warm build; ~6 min of runs): 2 rounds
#                    of c1x1 and c32x8 create, set, get and the 50 %/90 % read mixes, the leader
#                    first (a single session talks to the leader), floor and breakdown; no
#                    failover, no restart; waits up to --load-wait (default 120 s) for a load
#                    average below --max-load (default 1) and says in the report whether it got
#                    one; writes bench/results/issue20/RESULTS.md and prints its tables. The
#                    quiet-machine comparison is this one command on an otherwise idle host.
#   --leader-first   put the leader first in the server list (sessions are spread round-robin)
#   --rounds N       rounds (each runs both systems, alternating which goes first)
#   --duration S     measured seconds per run (after a warm-up)
#   --restart-txns N transactions in the log of the restarted follower
#   --max-load L     before starting, wait (up to --load-wait s) until the 1-min load is below L
#                    (the report says whether it was reached: the quiet gate)
#   --out DIR        where RESULTS.md, the plots and raw/ go (full: bench/results,
#                    quick: bench/results/quick)
#   --keep           keep the servers' data directories (under $BENCH_WORK, default
#                    /tmp/zab-bench-work)
# Environment: CARGO_TARGET_DIR (cargo's), BENCH_WORK (scratch), ZK_HEAP (default 1000m:
# zkServer.sh's own default heap), BENCH_NO_BUILD=1 (use the release binaries as they are),
# BENCH_ZABD_PORTS / BENCH_ZK_PORTS (base ports, default 23180 / 24180: clients base+1..3,
# quorum base+101.., election base+201.., zabd metrics base+301..).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

mode=full
rounds=""
duration=""
restart_txns=""
max_load=""
load_wait=""
out=""
keep=0
leader_first=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --issue20) mode=issue20 ;;
    --leader-first) leader_first=1 ;;
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --restart-txns) restart_txns=$2; shift ;;
    --max-load) max_load=$2; shift ;;
    --load-wait) load_wait=$2; shift ;;
    --out) out=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

if [ "$mode" = quick ]; then
  rounds=${rounds:-1}; duration=${duration:-3}; warmup=1s
  restart_txns=${restart_txns:-100000}
  concurrency=32x8; workloads=create,set,get; ratios=0,90,100; open_rates=2000
  failover_trials=1; restart_trials=1
  out=${out:-bench/results/quick}
elif [ "$mode" = issue20 ]; then
  rounds=${rounds:-2}; duration=${duration:-5}; warmup=1s
  restart_txns=${restart_txns:-0}
  concurrency=1x1,32x8; workloads=create,set,get; ratios=50,90; open_rates=""
  failover_trials=0; restart_trials=0
  max_load=${max_load:-1}; load_wait=${load_wait:-120}; leader_first=1
  out=${out:-bench/results/issue20}
else
  rounds=${rounds:-3}; duration=${duration:-8}; warmup=2s
  restart_txns=${restart_txns:-1000000}
  concurrency=1x1,32x8; workloads=create,set,get,exists; ratios=0,50,90,99,100
  open_rates=2000,10000
  failover_trials=3; restart_trials=3
  out=${out:-bench/results}
fi
max_load=${max_load:-1.5}
load_wait=${load_wait:-1200}
WORK=${BENCH_WORK:-/tmp/zab-bench-work}
ZK_HEAP=${ZK_HEAP:-1000m}
RAW=$out/raw
TICK=2000 INIT_LIMIT=10 SYNC_LIMIT=5 SNAP_COUNT=100000
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ZABD=$TARGET/release/zabd
BENCH=$TARGET/release/zab-bench
ZK_CP=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# ---- install Apache ZooKeeper 3.8 (other agents may hold the dpkg lock: wait and retry) ------
install_zookeeper() {
  if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null; then return; fi
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  for attempt in $(seq 1 30); do
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update -qq &&
       $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq zookeeper; then
      return
    fi
    log "apt-get failed (dpkg lock held?), retry $attempt/30 in 10 s"
    sleep 10
  done
  echo "cannot install zookeeper" >&2; exit 1
}

# ---- ensembles ----------------------------------------------------------------------------
# Ports (defaults): zabd clients 23181-23183 (quorum 23281+, election 23381+, metrics 23481+);
# ZooKeeper clients 24181-24183 (quorum 24281+, election 24381+). Loopback only.
base_port() { [ "$1" = zabd ] && echo "${BENCH_ZABD_PORTS:-23180}" || echo "${BENCH_ZK_PORTS:-24180}"; }
servers_of() { local b; b=$(base_port "$1"); echo "127.0.0.1:$((b+1)),127.0.0.1:$((b+2)),127.0.0.1:$((b+3))"; }
declare -A PID

write_configs() { # system snapCount
  local sys=$1 snap=$2 b; b=$(base_port "$sys")
  rm -rf "${WORK:?}/$sys"
  for i in 1 2 3; do
    local d=$WORK/$sys/n$i
    mkdir -p "$d/data" "$d/log"
    echo $i > "$d/data/myid"
    {
      echo "tickTime=$TICK"
      echo "initLimit=$INIT_LIMIT"
      echo "syncLimit=$SYNC_LIMIT"
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

start_ensemble() { # system snapCount
  write_configs "$1" "$2"
  for i in 1 2 3; do start_node "$1" $i; done
  "$BENCH" wait-serving -s "$(servers_of "$1")" --one-leader --timeout 120s >/dev/null
}

stop_ensemble() { for i in 1 2 3; do stop_node "$1" $i; done; }

cleanup() {
  for sys in zabd zookeeper; do stop_ensemble $sys; done
  [ "$keep" = 1 ] || rm -rf "${WORK:?}"
}
trap cleanup EXIT

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# A four-letter word (mntr, srvr, ...) to 127.0.0.1:port, through bash's /dev/tcp.
fourlw() { # port word
  ( exec 3<>"/dev/tcp/127.0.0.1/$1" && printf '%s' "$2" >&3 && timeout 5 cat <&3 ) 2>/dev/null || true
}

# Each server's state after a phase: RSS, `mntr` (both systems: ZooKeeper's fsync and
# request-latency summaries), and zabd's Prometheus metrics (its fsync histogram).
snapshot_servers() { # system round tag
  local sys=$1 r=$2 tag=$3 b; b=$(base_port "$sys")
  local total=0
  for i in 1 2 3; do
    local m; m=$(rss_mib "${PID[$sys$i]}")
    extra "$sys" "$r" "rss_mib_per_server_$tag" "$m" MiB
    total=$(awk -v a="$total" -v b="$m" 'BEGIN { print a + b }')
    fourlw $((b+i)) mntr >"$RAW/$sys-r$r-$tag-mntr-n$i.txt"
    if [ "$sys" = zabd ]; then
      curl -s --max-time 5 "http://127.0.0.1:$((b+300+i))/metrics" >"$RAW/$sys-r$r-$tag-metrics-n$i.txt" || true
    fi
  done
  extra "$sys" "$r" "rss_mib_3_servers_$tag" "$total" MiB
}

extra() { # system round name value unit
  printf '{"system":"%s","round":%s,"name":"%s","value":%s,"unit":"%s"}\n' "$@" >>"$RAW/extras.ndjson"
}

# ---- one round of one system ----------------------------------------------------------------
bench_system() { # system round
  local sys=$1 r=$2 servers; servers=$(servers_of "$sys")
  log "round $r: $sys — starting the ensemble"
  start_ensemble "$sys" "$SNAP_COUNT"
  sleep 2
  snapshot_servers "$sys" "$r" idle
  log "round $r: $sys — sweep"
  local opts=()
  [ -n "$open_rates" ] && opts+=(--open-rates "$open_rates")
  [ "$leader_first" = 1 ] && opts+=(--leader-first)
  if [ "$sys" = zabd ]; then
    local b; b=$(base_port zabd)
    opts+=(--breakdown "127.0.0.1:$((b+301)),127.0.0.1:$((b+302)),127.0.0.1:$((b+303))")
  fi
  "$BENCH" sweep -s "$servers" --system "$sys" --round "$r" -o "$RAW/$sys-r$r.json" \
    --workloads "$workloads" --read-ratios "$ratios" --concurrency "$concurrency" \
    --duration "${duration}s" --warmup "$warmup" --no-progress "${opts[@]}"
  snapshot_servers "$sys" "$r" after_sweep
  for t in $(seq 1 "$failover_trials"); do
    local l; l=$("$BENCH" leader -s "$servers")
    log "round $r: $sys — failover trial $t: kill -9 of leader $l (pid ${PID[$sys$l]})"
    "$BENCH" failover -s "$servers" --pid "${PID[$sys$l]}" --record "$RAW/extras.ndjson" \
      --system "$sys" --round "$r"
    wait "${PID[$sys$l]}" 2>/dev/null || true
    start_node "$sys" "$l"
    "$BENCH" wait-serving -s "$servers" --one-leader --timeout 120s >/dev/null
    sleep 1
  done
  stop_ensemble "$sys"
}

# ---- restart of a follower whose log holds N transactions --------------------------------------
restart_system() { # system
  local sys=$1 servers; servers=$(servers_of "$sys")
  # snapCount far above N: no snapshot is taken, the whole history is in the log.
  log "restart: $sys — loading $restart_txns transactions"
  start_ensemble "$sys" $((4 * restart_txns))
  "$BENCH" run -s "$servers" -w set --ops "$restart_txns" -c 32 -d 16 --payload 100 --keys 1000 \
    --warmup 0s --no-progress -o "$WORK/preload-$sys.json" >&2
  local tput; tput=$(awk -F': ' '/"throughput"/ { gsub(",", "", $2); print $2 }' "$WORK/preload-$sys.json")
  extra "$sys" 1 "preload_setdata_ops_per_s_c32x16_p100" "$tput" ops/s
  # Same data in both systems here (1,000 keys of 100 bytes, N transactions in the log): the
  # fair memory comparison.
  snapshot_servers "$sys" 1 "after_${restart_txns}_txns"
  for t in $(seq 1 "$restart_trials"); do
    local l f b; l=$("$BENCH" leader -s "$servers"); f=$(( l % 3 + 1 )); b=$(base_port "$sys")
    log "restart: $sys — trial $t: kill -9 of follower $f, then start it"
    kill -KILL "${PID[$sys$f]}"; wait "${PID[$sys$f]}" 2>/dev/null || true
    sleep 1
    local t0; t0=$(date +%s%N)
    start_node "$sys" "$f"
    "$BENCH" wait-serving -s "127.0.0.1:$((b+f))" --since-unix-ns "$t0" --timeout 600s \
      --name "restart_ms_${restart_txns}_txns" --record "$RAW/extras.ndjson" --system "$sys" --round "$t"
    extra "$sys" "$t" "rss_mib_follower_after_restart_${restart_txns}_txns" "$(rss_mib "${PID[$sys$f]}")" MiB
    "$BENCH" wait-serving -s "$servers" --one-leader --timeout 120s >/dev/null
  done
  du -sm "$WORK/$sys/n1/data" | awk -v s="$sys" '{ print "data dir of " s " node 1 after the load: " $1 " MiB" }' >&2
  stop_ensemble "$sys"
}

# ---- main --------------------------------------------------------------------------------------
install_zookeeper
if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
  log "BENCH_NO_BUILD=1: using the binaries already in $TARGET/release"
else
  log "building zabd and zab-bench (release)"
  cargo build --release -p zab-server -p zab-bench
fi

waited=0
while awk -v m="$max_load" '{ exit !($1 >= m) }' /proc/loadavg && [ "$waited" -lt "$load_wait" ]; do
  log "load average $(cut -d' ' -f1-3 /proc/loadavg) ≥ $max_load: waiting (${waited}s of ${load_wait}s)"
  sleep 30; waited=$((waited + 30))
done
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v m="$max_load" '{ exit !($1 < m) }' /proc/loadavg; then
  quiet="quiet gate met: 1-min load $load_start below $max_load at the start"
else
  quiet="quiet gate NOT met: 1-min load still $load_start (≥ $max_load) after waiting ${waited}s; these are loaded-machine figures"
fi
log "$quiet"

mkdir -p "$out"
rm -rf "$RAW"; mkdir -p "$RAW" "$WORK"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for r in $(seq 1 "$rounds"); do
  log "round $r: the physical floor (fdatasync on $WORK's disk, loopback round trip)"
  "$BENCH" floor --dir "$WORK" --duration 2s --record "$RAW/extras.ndjson" --system floor --round "$r" >&2
  if [ $((r % 2)) = 1 ]; then order="zabd zookeeper"; else order="zookeeper zabd"; fi
  for sys in $order; do bench_system "$sys" "$r"; done
done
if [ "$restart_trials" -gt 0 ]; then
  restart_system zabd
  restart_system zookeeper
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

zk_version=$(unzip -p /usr/share/java/zookeeper.jar META-INF/MANIFEST.MF 2>/dev/null | awk -F': ' '/Implementation-Version/ { print $2 }' | tr -d '\r' || true)
[ -n "$zk_version" ] || zk_version=$(dpkg-query -W -f '${Version}' zookeeper 2>/dev/null || echo 3.8)
java_version=$(java -version 2>&1 | head -1)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
leader_note=""
if [ "$leader_first" = 1 ]; then
  leader_note=" With --leader-first the leader heads the server list, so a single session (c1x1) talks to the leader (one peer round trip per write), and 32 sessions are spread evenly."
fi
cat >"$RAW/notes.md" <<NOTES
## Settings

- **Mode:** \`ci/bench.sh --$mode\` — $rounds round(s); each run: ${warmup} warm-up, ${duration} s measured; load average at start $load_start, at end $load_end.
- **Quiet gate (load average below $max_load):** $quiet. Every run's own 1-minute load average at its start is in the targets table and \`raw/\`.
- **Systems:** zabd (this repository, commit \`$rev\`, release build) and Apache ZooKeeper $zk_version (Debian package \`zookeeper\`, $java_version, \`-Xmx$ZK_HEAP\` — zkServer.sh's default heap — default G1 GC).
- **Ensembles:** 3 servers each, on 127.0.0.1, one system at a time (the other is stopped), fresh data directories per round, on the same disk. Identical zoo.cfg settings: tickTime=$TICK, initLimit=$INIT_LIMIT, syncLimit=$SYNC_LIMIT, snapCount=$SNAP_COUNT, maxClientCnxns=0; fsync on every commit for both (ZooKeeper \`forceSync=yes\`, its default; zabd always fsyncs). ZooKeeper: AdminServer off, log4j at INFO to a file; zabd: \`RUST_LOG=info\` to a file. ZooKeeper's throttle (\`globalOutstandingLimit\`=1000) at its default.
- **Load:** \`zab-bench sweep\` on the same machine (2 tokio worker threads), sessions spread round-robin over the three servers (the leader serves clients too, ZooKeeper's default), 1 KiB values, 1,000 keys; \`create\` makes a new node per operation, \`set\`/\`get\`/\`exists\` hit random keys, \`mix-rN\` is N % getData and the rest setData. Nothing is pinned to a core: servers and load generator share the 2 cores.$leader_note
- **Failover:** \`kill -9\` of the leader, then a new session + setData tried on every server in parallel until one succeeds; $failover_trials trial(s) per round.
- **Restart:** a separate ensemble with snapCount=$((4 * restart_txns)) (so that no snapshot is taken and the whole history is in the log) gets $restart_txns setData transactions (100-byte values); then a follower is killed with \`kill -9\` and started again; the time is from the start of the process until its \`srvr\` reports a mode (it has loaded its log and synced with the leader). $restart_trials trial(s).
- **Memory:** VmRSS of each server process from /proc: idle (fresh ensemble, before any load), after the sweep (before the failover trials — the data differs: each system holds the nodes *its* create runs made, so the faster one holds more), and after the restart test's preload (the same 1,000 keys and $restart_txns transactions in both: the like-for-like figure). \`mntr\` of every server and zabd's \`/metrics\` at each of those points are in \`raw/\`.
NOTES

analysis=()
[ -f bench/results/analysis.md ] && [ "$mode" = full ] && analysis=(--analysis bench/results/analysis.md)
"$BENCH" report --raw "$RAW" --out-dir "$out" -o "$out/RESULTS.md" --notes "$RAW/notes.md" \
  --date "$started" "${analysis[@]}"
log "done in ${SECONDS}s: $out/RESULTS.md"
if [ "$mode" = issue20 ]; then
  # The tables (throughput/latency, floor, targets, where zabd's time goes), on stdout.
  sed -n '/^## Throughput and latency/,$p' "$out/RESULTS.md"
fi
