#!/usr/bin/env bash
# ci/migrate.sh — moving a ZooKeeper 3.8 deployment to zabd and back, against the real thing.
#
# Runs README's "Migrating from ZooKeeper" walk-through end to end:
#  1. Apache ZooKeeper 3.8 (Debian's `zookeeper`, installed if missing) gets every kind of node
#     and a transaction history from impl/examples/migrate_probe.rs (multis, a failed multi,
#     deletes, ACL changes, an expired and a closed session, ephemerals, sequential, container
#     and TTL nodes), with snapCount=10 so that it takes several (fuzzy) snapshots and rolls
#     its log; every node is dumped (getData, getACL, getChildren2 as the super user);
#  2. ZooKeeper is stopped with a session still open, `zabd import --config zoo.cfg` imports its
#     dataDir in place, zabd is started with the same zoo.cfg, and must serve every node exactly
#     as ZooKeeper did (data, every Stat field, ACLs, children, ephemeral owners); the session
#     left open is resumed with ZooKeeper's password (imported sessions keep it); a new write must
#     get a zxid after every migrated one;
#  3. zabd is stopped, `zabd export --to-zookeeper` writes a ZooKeeper dataDir, ZooKeeper 3.8 is
#     started on it and must serve every node exactly as zabd did, and continue the zxids;
#  4. `zabd inspect snapshot|log --json` reads the imported files.
#
#   ci/migrate.sh        exits non-zero on any difference (the diff is printed)
#
# Environment: ZABD=path and PROBE=path use those binaries instead of building them;
# ZAB_MIGRATE_KEEP=1 keeps the work directory; CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
say() { echo "[migrate $((SECONDS - started))s] $*"; }

# --- ZooKeeper 3.8 from Debian (another process may hold the dpkg lock: retry) -------------
if [ ! -f /usr/share/java/zookeeper.jar ]; then
  export DEBIAN_FRONTEND=noninteractive
  for attempt in $(seq 1 60); do
    if apt-get install -y zookeeper >/tmp/zab-migrate-apt.log 2>&1; then break; fi
    if [ "$attempt" = 1 ]; then apt-get update >/dev/null 2>&1 || true; fi
    if [ "$attempt" = 60 ]; then cat /tmp/zab-migrate-apt.log >&2; exit 1; fi
    sleep 5
  done
fi

target=${CARGO_TARGET_DIR:-$PWD/target}
zabd=${ZABD:-$target/debug/zabd}
probe=${PROBE:-$target/debug/examples/migrate_probe}
if [ -z "${ZABD:-}" ] || [ -z "${PROBE:-}" ] || [ ! -x "$zabd" ] || [ ! -x "$probe" ]; then
  say "building zabd and migrate_probe"
  cargo build --locked -q -p zab-server --bin zabd --example migrate_probe
  zabd=$target/debug/zabd
  probe=$target/debug/examples/migrate_probe
fi

work=$(mktemp -d /tmp/zab-migrate.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" != 0 ]; then
    for f in "$work"/*.log; do echo "--- $f (tail)" >&2; tail -25 "$f" >&2 || true; done
  fi
  if [ "${ZAB_MIGRATE_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# mode is "zk" or "zabd": waits until the server answers srvr.
wait_serving() {
  local port=$1 pid=$2 deadline=$((SECONDS + 60))
  until python3 - "$port" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"srvr")
    sys.exit(0 if b"Mode:" in s.recv(4096) else 1)
except OSError:
    sys.exit(1)
PY
  do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
      echo "server on port $port did not start" >&2; return 1
    fi
    sleep 0.2
  done
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

zk_cp=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
start_zk() { # cfg log -> sets zk_pid
  java -Xmx256m -cp "$zk_cp" -Dzookeeper.root.logger=INFO,CONSOLE \
    -Dzookeeper.extendedTypesEnabled=true \
    -Dzookeeper.DigestAuthenticationProvider.superDigest=super:rUwANJCpjJIrnxzFdZozglgBlpw= \
    -Dznode.container.checkIntervalMs=2000000000 \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$1" >"$2" 2>&1 </dev/null &
  zk_pid=$!
  pids+=("$zk_pid")
}
zoo_cfg() { # dataDir port
  cat <<CFG
tickTime=500
dataDir=$1
clientPort=$2
clientPortAddress=127.0.0.1
maxSessionTimeout=60000
snapCount=10
extendedTypesEnabled=true
admin.enableServer=false
4lw.commands.whitelist=*
forceSync=no
CFG
}
compare() { # expected actual what
  if ! diff -u "$1" "$2" >"$work/diff.out"; then
    echo "DIFFERENT: $3" >&2; head -60 "$work/diff.out" >&2; exit 1
  fi
  say "identical: $3 ($(wc -l <"$2") nodes)"
}

# --- 1. ZooKeeper with a history -----------------------------------------------------------
port=$(free_port)
mkdir -p "$work/zk"
zoo_cfg "$work/zk" "$port" >"$work/zoo.cfg"
start_zk "$work/zoo.cfg" "$work/zk1.log"
wait_serving "$port" "$zk_pid"
say "ZooKeeper 3.8 serving on 127.0.0.1:$port"
touch "$work/load.out"
"$probe" load "127.0.0.1:$port" >"$work/load.out" 2>"$work/load.log" &
load_pid=$!
pids+=("$load_pid")
deadline=$((SECONDS + 60))
until grep -q loaded "$work/load.out"; do
  if ! kill -0 "$load_pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
    echo "the workload failed" >&2; cat "$work/load.log" >&2; exit 1
  fi
  sleep 0.2
done
say "$(cat "$work/load.out")"
"$probe" dump "127.0.0.1:$port" >"$work/zk.dump"

# --- 2. stop ZooKeeper (a session still open), import, start zabd with the same zoo.cfg -----
stop "$zk_pid"
stop "$load_pid"
say "ZooKeeper stopped: $(ls "$work/zk/version-2" | tr '\n' ' ')"
"$zabd" import --config "$work/zoo.cfg"
"$zabd" --config "$work/zoo.cfg" --super-digest super:rUwANJCpjJIrnxzFdZozglgBlpw= \
  --container-check-ms 2000000000 >"$work/zabd.log" 2>&1 &
zabd_pid=$!
pids+=("$zabd_pid")
wait_serving "$port" "$zabd_pid"
"$probe" dump "127.0.0.1:$port" >"$work/zabd.dump"
compare "$work/zk.dump" "$work/zabd.dump" "zabd after import serves what ZooKeeper served"
"$probe" continues "127.0.0.1:$port" "$work/zk.dump"
"$probe" dump "127.0.0.1:$port" >"$work/zabd2.dump"
read -r session passwd < <(sed -n 's/.*session \(0x[0-9a-f]*\) passwd \([0-9a-f]*\).*/\1 \2/p' "$work/load.out")
# A session imported from ZooKeeper keeps ZooKeeper's id-derived password (zabd's own sessions
# use a password keyed by the ensemble's secret): the client of the session left open resumes
# it, its ephemeral still its own.
"$probe" resume "127.0.0.1:$port" "$session" "$passwd" resumed

# --- 3. stop zabd, export, start ZooKeeper on the export ------------------------------------
stop "$zabd_pid"
for f in "$work"/zk/zab-v1/snapshot.*; do
  "$zabd" inspect snapshot "$f" --json >"$work/inspect-snapshot.json"
done
for f in "$work"/zk/zab-v1/log.*; do
  [ -e "$f" ] && "$zabd" inspect log "$f" --json >"$work/inspect-log.json"
done
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
snap = json.load(open(w + "/inspect-snapshot.json"))
assert snap["summary"]["nodes"] > 20 and snap["summary"]["containers"] == 2 and snap["summary"]["ttl_nodes"] == 2, snap["summary"]
log = json.load(open(w + "/inspect-log.json"))
types = log["summary"]["by_type"]
assert "create2" in types and "delete" in types, types
print("[migrate] inspect: snapshot", snap["summary"], "log", types)
PY
mkdir -p "$work/back"
"$zabd" export --config "$work/zoo.cfg" --to-zookeeper "$work/back"
zoo_cfg "$work/back" "$port" >"$work/back.cfg"
start_zk "$work/back.cfg" "$work/zk2.log"
wait_serving "$port" "$zk_pid"
"$probe" dump "127.0.0.1:$port" >"$work/back.dump"
compare "$work/zabd2.dump" "$work/back.dump" "ZooKeeper 3.8 on the export serves what zabd served"
"$probe" continues "127.0.0.1:$port" "$work/zabd2.dump"
stop "$zk_pid"
say "round trip ok"
