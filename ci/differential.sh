#!/usr/bin/env bash
# ci/differential.sh — the live differential test: zabd against a real Apache ZooKeeper 3.8.
#
# Installs ZooKeeper 3.8 from Debian (package `zookeeper`), starts it standalone on a free
# loopback port with a temporary dataDir, runs impl/tests/differential.rs against it and a
# zabd the test starts itself, and stops ZooKeeper on exit.
#
#   ci/differential.sh             compare ZAB_DIFF_CASES (default 300) generated cases
#   ci/differential.sh --record    the same, and rewrite impl/tests/corpus/differential.jsonl
#   ci/differential.sh --bad-input run impl/tests/bad_input.rs against ZooKeeper too
#   ci/differential.sh --serve     only start ZooKeeper and wait (prints its address)
#
# Environment: ZAB_DIFF_CASES (cases), ZAB_DIFF_SEED (the generator's seed, default fixed),
# CARGO_TARGET_DIR (as usual).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=diff
for arg in "$@"; do
  case "$arg" in
    --record) mode=record ;;
    --bad-input) mode=bad-input ;;
    --serve) mode=serve ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done

# --- install ZooKeeper 3.8 (another process may hold the dpkg lock: retry) ---------------
if [ ! -f /usr/share/java/zookeeper.jar ]; then
  export DEBIAN_FRONTEND=noninteractive
  for attempt in $(seq 1 60); do
    if apt-get install -y zookeeper >/tmp/zab-diff-apt.log 2>&1; then break; fi
    if [ "$attempt" = 1 ]; then apt-get update >/dev/null 2>&1 || true; fi
    if [ "$attempt" = 60 ]; then cat /tmp/zab-diff-apt.log >&2; exit 1; fi
    sleep 5
  done
fi

# --- start it standalone ----------------------------------------------------------------
work=$(mktemp -d /tmp/zab-diff-zk.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/data" "$work/log"
cat >"$work/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=60
admin.enableServer=false
4lw.commands.whitelist=*
forceSync=no
CFG
cp=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
# extendedTypesEnabled: TTL nodes; the super digest (super:diff) lets the test clean up
# ACL-protected nodes; containers and TTL nodes are never reaped during a run (a reaper that
# runs at an arbitrary moment would make the replies depend on timing).
java -Xmx256m -cp "$cp" \
  -Dzookeeper.log.dir="$work/log" -Dzookeeper.root.logger=INFO,CONSOLE \
  -Dzookeeper.extendedTypesEnabled=true \
  -Dzookeeper.DigestAuthenticationProvider.superDigest=super:rUwANJCpjJIrnxzFdZozglgBlpw= \
  -Dznode.container.checkIntervalMs=2000000000 \
  org.apache.zookeeper.server.quorum.QuorumPeerMain "$work/zoo.cfg" \
  >"$work/log/console.out" 2>&1 </dev/null &
zk_pid=$!
cleanup() {
  status=$?
  kill "$zk_pid" 2>/dev/null || true
  wait "$zk_pid" 2>/dev/null || true
  if [ "$status" != 0 ]; then
    echo "--- ZooKeeper's log (tail) ---" >&2; tail -40 "$work/log/console.out" >&2 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

ruok() {
  python3 - "$port" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"ruok")
    print(s.recv(16).decode())
except OSError:
    print("")
PY
}
deadline=$((SECONDS + 60))
until [ "$(ruok)" = imok ]; do
  if ! kill -0 "$zk_pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
    echo "ZooKeeper did not start:" >&2; tail -50 "$work/log/console.out" >&2; exit 1
  fi
  sleep 0.2
done
export ZAB_REFERENCE_ZK=127.0.0.1:$port
echo "ZooKeeper 3.8 (pid $zk_pid) serving on $ZAB_REFERENCE_ZK"

case "$mode" in
  serve)
    echo "Ctrl-C stops it"; wait "$zk_pid" ;;
  bad-input)
    cargo test -p zab-server --test bad_input -- --nocapture ;;
  record)
    ZAB_RECORD_CORPUS=1 cargo test -p zab-server --test differential -- --nocapture ;;
  diff)
    cargo test -p zab-server --test differential -- --nocapture ;;
esac
