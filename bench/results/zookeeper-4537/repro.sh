#!/bin/bash
# Reproduces ZooKeeper 3.8.0's lost CommitProcessor wake-up (ZOOKEEPER-4537) with zab-bench and
# captures the evidence: a fresh 3-server ensemble (Debian's zookeeper package, the zoo.cfg of
# ci/bench.sh, data on tmpfs so that writes are fast), one c1x1 create run against the leader;
# when the session's request stays queued on the leader for 2 s, the servers' cons/mntr, the
# sockets (ss) and the leader's threads (jstack) are saved, then one getData from a second
# session on the leader releases the held write. Up to TRIES fresh ensembles (default 6).
# Usage: repro.sh [OUT_DIR]   (env: BENCH=path/to/zab-bench, B=port base (27180), TRIES)
set -u
OUT=${1:-/tmp/zk4537}; B=${B:-27180}; TRIES=${TRIES:-6}
BENCH=${BENCH:-target/release/zab-bench}
W=/dev/shm/zk4537-$$; mkdir -p "$OUT"; : >"$OUT/summary.txt"
ZK_CP=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
S=127.0.0.1:$((B+1)),127.0.0.1:$((B+2)),127.0.0.1:$((B+3))
fl() { (exec 3<>"/dev/tcp/127.0.0.1/$1"; printf %s "$2" >&3; timeout 3 cat <&3) 2>/dev/null; }
pids=()
start() {
  rm -rf "$W"; pids=()
  for i in 1 2 3; do d=$W/n$i; mkdir -p "$d/data" "$d/log"; echo $i > "$d/data/myid"
    { echo tickTime=2000; echo initLimit=10; echo syncLimit=5; echo snapCount=100000
      echo "dataDir=$d/data"; echo "clientPort=$((B+i))"; echo clientPortAddress=127.0.0.1
      echo maxClientCnxns=0; echo "4lw.commands.whitelist=*"; echo admin.enableServer=false; echo forceSync=yes
      for j in 1 2 3; do echo "server.$j=127.0.0.1:$((B+100+j)):$((B+200+j))"; done; } > "$d/zoo.cfg"
    java -Xmx1000m -cp "$ZK_CP" -Dzookeeper.log.dir="$d/log" -Dzookeeper.root.logger=INFO,CONSOLE \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" >>"$d/log/console.out" 2>&1 </dev/null &
    pids+=($!)
  done
  "$BENCH" wait-serving -s "$S" --one-leader --timeout 120s >/dev/null
}
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$W"; }
trap stop EXIT
for i in 1 2 3; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$((B+i))") 2>/dev/null; then echo "port $((B+i)) is in use: stop what listens there or set B" >&2; exit 2; fi
done
for t in $(seq 1 "$TRIES"); do
  start
  L=""; for i in 1 2 3; do fl $((B+i)) srvr | grep -q 'Mode: leader' && L=$((B+i)) && li=$i; done
  # A 60 s session (40 s negotiated, ZooKeeper's maximum at tickTime 2000): pings only after
  # 12.3 s, so the release below is the second session's request, not a ping.
  "$BENCH" run -s "$S" -w create -c 1 -d 1 --duration 5s --warmup 1s --leader-first --no-progress \
    --session-timeout-ms 60000 >"$OUT/bench-try$t.out" 2>&1 &
  bp=$!; prev=""; t0=$(date +%s.%N); stalled=0
  while kill -0 $bp 2>/dev/null; do
    c=$(fl "$L" cons | grep 'queued=1,' | grep -o 'recved=[0-9]*')
    if [ -n "$c" ] && [ "$c" = "$prev" ]; then
      stalled=1
      echo "cons on the leader: $(fl "$L" cons | grep 'queued=' | grep -v 'recved=1,')" | tee -a "$OUT/summary.txt"
      echo "try $t: the session's request held on the leader ($L) since at least +$(echo "$(date +%s.%N) - $t0 - 1" | bc) s" | tee -a "$OUT/summary.txt"
      for i in 1 2 3; do fl $((B+i)) cons >"$OUT/cons-n$i.txt"; fl $((B+i)) mntr >"$OUT/mntr-n$i.txt"; done
      ss -tnie "( sport = :$L or dport = :$L )" >"$OUT/ss-client-port.txt"
      jstack "${pids[$((li-1))]}" >"$OUT/jstack-leader.txt" 2>&1
      echo "one getData from a second session on the leader at +$(echo "$(date +%s.%N) - $t0" | bc) s:" | tee -a "$OUT/summary.txt"
      "$BENCH" run -s "127.0.0.1:$L" -w get -c 1 -d 1 --ops 1 --warmup 0s --no-setup --no-progress 2>&1 | tail -1 | tee -a "$OUT/summary.txt"
      # Released: the session's connection has received more requests since (it may be held
      # again: the race can hit the very next write).
      for k in 1 2; do sleep 0.5
        echo "cons on the leader $k × 0.5 s later: $(fl "$L" cons | grep 'queued=' | grep -v 'recved=1,')" | tee -a "$OUT/summary.txt"
      done
      break
    fi
    prev=$c; sleep 1
  done
  wait $bp; rc=$?
  echo "try $t: the c1x1 run ended (rc $rc) at +$(echo "$(date +%s.%N) - $t0" | bc) s:" | tee -a "$OUT/summary.txt"
  grep -v '^ ' "$OUT/bench-try$t.out" | tail -2 | tee -a "$OUT/summary.txt"
  stop
  [ $stalled = 1 ] && exit 0
done
echo "no stall in $TRIES tries"; exit 1
