#!/usr/bin/env bash
# Re-records impl/tests/fixtures/zookeeper-3.8-admin-keys.json: the JSON keys of every
# AdminServer command of Debian's ZooKeeper 3.8 (Jetty needs servlet-api.jar on the class
# path), answered by a standalone server and by the leader and a follower of a 3-server
# ensemble, each with a client session holding an ephemeral node and watches (so `dump`,
# `watches` and `connections` have entries). Keys that are data (session ids, paths, server
# ids, expiry times) are recorded as `*`, array elements as `[]`; impl/tests/admin_server.rs
# compares zabd's answers with these key sets.
#   ci/admin-keys.sh           re-record the fixture (about 15 s)
#   ci/admin-keys.sh --check   record into a temporary file and fail if the fixture differs
#                              (the CI step: the live ZooKeeper still answers what the test
#                              compares zabd with)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fixture=$root/impl/tests/fixtures/zookeeper-3.8-admin-keys.json
check=0
if [ "${1:-}" = "--check" ]; then check=1; fi
work=$(mktemp -d /tmp/zab-admin-keys.XXXXXX)
out=$fixture
if [ "$check" = 1 ]; then out=$work/recorded.json; fi
# Debian's ZooKeeper 3.8 and the servlet API its Jetty AdminServer needs (another process may
# hold the dpkg lock: retry).
if [ ! -f /usr/share/java/zookeeper.jar ] || [ ! -f /usr/share/java/servlet-api.jar ]; then
  export DEBIAN_FRONTEND=noninteractive
  for attempt in $(seq 1 60); do
    if apt-get install -y zookeeper libservlet-api-java >"$work/apt.log" 2>&1; then break; fi
    if [ "$attempt" = 1 ]; then apt-get update >/dev/null 2>&1 || true; fi
    if [ "$attempt" = 60 ]; then cat "$work/apt.log" >&2; exit 1; fi
    sleep 5
  done
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cp=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/servlet-api.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
free() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start() { # dir
  java -Xmx256m -cp "$cp" -Dzookeeper.root.logger=WARN,CONSOLE \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$1/zoo.cfg" >"$1/zk.log" 2>&1 </dev/null &
  pids+=("$!")
}
# Standalone, and a 3-server ensemble.
declare -A client admin
mkdir -p "$work/s"
client[s]=$(free); admin[s]=$(free)
cat >"$work/s/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/s
clientPort=${client[s]}
clientPortAddress=127.0.0.1
admin.serverAddress=127.0.0.1
admin.serverPort=${admin[s]}
4lw.commands.whitelist=*
CFG
start "$work/s"
servers=""
for i in 1 2 3; do client[$i]=$(free); admin[$i]=$(free); servers+="server.$i=127.0.0.1:$(free):$(free)"$'\n'; done
for i in 1 2 3; do
  mkdir -p "$work/$i"; echo "$i" >"$work/$i/myid"
  cat >"$work/$i/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$work/$i
clientPort=${client[$i]}
clientPortAddress=127.0.0.1
admin.serverAddress=127.0.0.1
admin.serverPort=${admin[$i]}
4lw.commands.whitelist=*
$servers
CFG
  start "$work/$i"
done
python3 - "$out" "${admin[s]}" "${client[s]}" "${admin[1]}" "${client[1]}" "${admin[2]}" "${client[2]}" "${admin[3]}" "${client[3]}" <<'PY'
import json, socket, struct, sys, time, urllib.request

out, ports = sys.argv[1], sys.argv[2:]
servers = {"s": (int(ports[0]), int(ports[1]))}
for k in range(3):
    servers[str(k + 1)] = (int(ports[2 + 2 * k]), int(ports[3 + 2 * k]))

def get(admin, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}", timeout=5) as r:
        return r.read().decode()

def wait(admin, state_ok):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            st = json.loads(get(admin, "/commands/monitor")).get("server_state")
            if state_ok(st):
                return st
        except Exception:
            pass
        time.sleep(0.3)
    raise SystemExit(f"admin port {admin}: no server state")

def jute_str(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b

def frame(body):
    return struct.pack(">i", len(body)) + body

def session(port):
    """A raw client session: an ephemeral node /adm-e, a data watch on it, a child watch on /."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(frame(struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + b"\0" * 16))
    def reply():
        n = struct.unpack(">i", c.recv(4))[0]
        buf = b""
        while len(buf) < n:
            buf += c.recv(n - len(buf))
        return buf
    reply()
    acl = struct.pack(">i", 1) + struct.pack(">i", 31) + jute_str("world") + jute_str("anyone")
    # create (op 1): path, data, acl, flags=1 (ephemeral)
    c.sendall(frame(struct.pack(">ii", 1, 1) + jute_str("/adm-e") + struct.pack(">i", 1) + b"x" + acl + struct.pack(">i", 1)))
    reply()
    # getData (op 4) with watch; getChildren (op 8) of / with watch
    c.sendall(frame(struct.pack(">ii", 2, 4) + jute_str("/adm-e") + b"\x01"))
    reply()
    c.sendall(frame(struct.pack(">ii", 3, 8) + jute_str("/") + b"\x01"))
    reply()
    return c

def is_data(k):
    return k.isdigit() or k.startswith("/")

def keys(v, prefix=""):
    out = set()
    if isinstance(v, dict):
        for k, x in v.items():
            p = prefix + ("*" if is_data(k) else k)
            out.add(p)
            out |= keys(x, p + ".")
    elif isinstance(v, list):
        for x in v:
            out |= keys(x, prefix + "[].")
    return out

wait(servers["s"][0], lambda s: s == "standalone")
roles = {}
for k in "123":
    roles[k] = wait(servers[k][0], lambda s: s in ("leader", "follower"))
leader = next(k for k in "123" if roles[k] == "leader")
follower = next(k for k in "123" if roles[k] == "follower")
record = {}
for name, k in (("standalone", "s"), ("leader", leader), ("follower", follower)):
    admin, client = servers[k]
    conn = session(client)
    time.sleep(0.5)
    listing = get(admin, "/commands")
    commands = sorted({l.split("/commands/")[1].split('"')[0] for l in listing.splitlines() if "/commands/" in l})
    answers = {}
    for cmd in commands:
        if cmd in ("set_trace_mask",):
            continue
        answers[cmd] = sorted(keys(json.loads(get(admin, "/commands/" + cmd))))
    answers["nonexistent"] = sorted(keys(json.loads(get(admin, "/commands/nonexistent"))))
    record[name] = answers
    conn.close()
with open(out, "w") as f:
    json.dump({"zookeeper": "3.8.0 (Debian)", "recorded_by": "ci/admin-keys.sh", "servers": record}, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"recorded {sum(len(v) for v in record.values())} answers to {out}")
PY
if [ "$check" = 1 ]; then
  if ! diff -u "$fixture" "$out"; then
    echo "ZooKeeper's AdminServer keys differ from $fixture (re-record: ci/admin-keys.sh)" >&2
    exit 1
  fi
  echo "ZooKeeper 3.8's AdminServer keys match $fixture"
fi
