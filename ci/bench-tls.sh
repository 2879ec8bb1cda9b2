#!/usr/bin/env bash
# ci/bench-tls.sh — what TLS on the client port costs (README "Performance", issue 11):
# zabd plaintext vs zabd TLS vs Apache ZooKeeper 3.8 TLS (and ZooKeeper plaintext, free from
# the same ensemble), same settings, side by side in one run.
#
# Each system runs a 3-server ensemble on loopback with both a plaintext `clientPort` and a
# `secureClientPort` (ZooKeeper: NettyServerCnxnFactory, `ssl.clientAuth` need, PKCS#12 stores;
# zabd: the same certificates, PEM), the certificates made here with openssl. zab-bench drives
# the same closed-loop workloads over each port (TLS: `--tls-ca/--tls-cert/--tls-key`, TLS 1.3,
# a client certificate); rounds alternate the order of the systems and of the ports. The
# summary gives, per workload and transport, the median throughput and p99 over the rounds,
# the ratios TLS/plaintext and zabd/ZooKeeper, and the load average before and after. NOT run
# by CI (minutes; the machine must be otherwise idle for honest figures).
#
# Usage: ci/bench-tls.sh [--rounds N] [--duration SECONDS] [--out FILE]
#   --rounds N      rounds (default 3)
#   --duration S    measured seconds per run (default 5, after a 1 s warm-up)
#   --out FILE      the summary (markdown) also written here
# Environment: CARGO_TARGET_DIR, BENCH_NO_BUILD=1 (use the binaries as they are), BIN_DIR
# (where zabd and zab-bench are; default the release directory), ZK_HEAP (default 1000m).
# Ports 24501-24633 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

rounds=3
duration=5
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN_DIR=${BIN_DIR:-$TARGET/release}
ZABD=$BIN_DIR/zabd
BENCH=$BIN_DIR/zab-bench
ZK_HEAP=${ZK_HEAP:-1000m}
ZK_CP=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar
WORK=$(mktemp -d /tmp/zab-bench-tls.XXXXXX)
RAW=$WORK/raw
mkdir -p "$RAW"
PASS=zab-bench-secret
declare -A PID

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

cleanup() {
  for k in "${!PID[@]}"; do kill "${PID[$k]}" 2>/dev/null || true; done
  for k in "${!PID[@]}"; do wait "${PID[$k]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building zabd and zab-bench (release)"
  cargo build --release -p zab-server -p zab-bench
fi
[ -f /usr/share/java/zookeeper.jar ] || { echo "needs Debian's zookeeper (ci/bench.sh installs it)" >&2; exit 1; }

# ---- certificates ---------------------------------------------------------------------------
pki=$WORK/pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" \
  -out "$pki/ca.pem" -days 2 -subj "/CN=zab bench CA" 2>/dev/null
for name in server client; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$name.key" \
    -out "$pki/$name.csr" -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -out "$pki/$name.crt" \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n') 2>/dev/null
done
cat "$pki/server.crt" "$pki/server.key" >"$pki/server.pem"
openssl pkcs12 -export -in "$pki/server.crt" -inkey "$pki/server.key" -certfile "$pki/ca.pem" \
  -passout "pass:$PASS" -out "$pki/server.p12"
keytool -importcert -noprompt -alias ca -file "$pki/ca.pem" -keystore "$pki/trust.p12" \
  -storetype PKCS12 -storepass "$PASS" >/dev/null 2>&1

# ---- ensembles ----------------------------------------------------------------------------
# zabd: plain 24501-3, TLS 24511-3, quorum 24521-3, election 24531-3; ZooKeeper: 246xx.
base() { [ "$1" = zabd ] && echo 24500 || echo 24600; }
ports_of() { # system plain|tls
  local b off; b=$(base "$1"); off=$([ "$2" = tls ] && echo 10 || echo 0)
  echo "127.0.0.1:$((b+off+1)),127.0.0.1:$((b+off+2)),127.0.0.1:$((b+off+3))"
}

start_ensemble() { # system
  local sys=$1 b; b=$(base "$sys")
  for i in 1 2 3; do
    local d=$WORK/$sys/n$i
    rm -rf "$d"; mkdir -p "$d/data" "$d/log"
    echo "$i" >"$d/data/myid"
    {
      echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"; echo "snapCount=100000"
      echo "dataDir=$d/data"; echo "maxClientCnxns=0"; echo "4lw.commands.whitelist=*"
      echo "admin.enableServer=false"
      echo "clientPort=$((b+i))"; echo "clientPortAddress=127.0.0.1"
      echo "secureClientPort=$((b+10+i))"; echo "secureClientPortAddress=127.0.0.1"
      echo "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory"
      echo "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider"
      echo "ssl.clientAuth=need"
      if [ "$sys" = zookeeper ]; then
        echo "ssl.keyStore.location=$pki/server.p12"; echo "ssl.keyStore.password=$PASS"
        echo "ssl.keyStore.type=PKCS12"
        echo "ssl.trustStore.location=$pki/trust.p12"; echo "ssl.trustStore.password=$PASS"
        echo "ssl.trustStore.type=PKCS12"
        echo "forceSync=yes"
      else
        echo "ssl.keyStore.location=$pki/server.pem"; echo "ssl.keyStore.type=PEM"
        echo "ssl.trustStore.location=$pki/ca.pem"; echo "ssl.trustStore.type=PEM"
      fi
      for j in 1 2 3; do echo "server.$j=127.0.0.1:$((b+20+j)):$((b+30+j))"; done
    } >"$d/zoo.cfg"
    if [ "$sys" = zabd ]; then
      RUST_LOG=warn NO_COLOR=1 nohup "$ZABD" --config "$d/zoo.cfg" >"$d/log/console.out" 2>&1 </dev/null &
    else
      nohup java -Xmx"$ZK_HEAP" -cp "$ZK_CP" -Dzookeeper.log.dir="$d/log" \
        -Dzookeeper.root.logger=WARN,CONSOLE \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" >"$d/log/console.out" 2>&1 </dev/null &
    fi
    PID[$sys$i]=$!
  done
  if ! "$BENCH" wait-serving -s "$(ports_of "$sys" plain)" --one-leader --timeout 120s >/dev/null; then
    tail -n 40 "$WORK/$sys"/n*/log/console.out >&2
    exit 1
  fi
}

stop_ensemble() {
  for i in 1 2 3; do
    local p=${PID[$1$i]:-}
    [ -n "$p" ] || continue
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset "PID[$1$i]"
  done
}

# `run_one system transport workload round`
run_one() {
  local sys=$1 tr=$2 w=$3 r=$4 tls=()
  [ "$tr" = tls ] && tls=(--tls-ca "$pki/ca.pem" --tls-cert "$pki/client.crt" --tls-key "$pki/client.key")
  local args=(-w set -c 32 -d 8)
  [ "$w" = get ] && args=(-w get -c 32 -d 8)
  "$BENCH" "${tls[@]}" run -s "$(ports_of "$sys" "$tr")" "${args[@]}" --payload 1024 --keys 1000 \
    --duration "${duration}s" --warmup 1s --no-progress -o "$RAW/$sys-$tr-$w-r$r.json" >/dev/null
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then systems="zabd zookeeper"; transports="plain tls"; else
    systems="zookeeper zabd"; transports="tls plain"; fi
  for sys in $systems; do
    log "round $r: $sys"
    start_ensemble "$sys"
    sleep 2
    for w in set get; do
      for tr in $transports; do run_one "$sys" "$tr" "$w" "$r"; done
    done
    stop_ensemble "$sys"
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RAW" "$rounds" "$duration" "$load_start" "$load_end" "${out:-}" <<'PY'
import json, os, statistics, sys
raw, rounds, duration, load_start, load_end, out = sys.argv[1:7]
res = {}
for f in os.listdir(raw):
    sys_, tr, w, r = f[:-5].split("-")
    d = json.load(open(os.path.join(raw, f)))
    res.setdefault((sys_, tr, w), []).append((d["throughput"], d["latency"]["p99_us"] / 1000))
def med(k, i):
    v = res.get(k)
    return statistics.median(x[i] for x in v) if v else float("nan")
lines = [
    f"TLS cost, {rounds} round(s) of {duration} s per run (medians over rounds); "
    f"load average {load_start} at start, {load_end} at end.",
    "",
    "| workload | system | plaintext ops/s | TLS ops/s | TLS/plain | plaintext p99 ms | TLS p99 ms | TLS/plain p99 |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
]
for w, name in [("set", "setData 1 KiB, 32 sessions x 8"), ("get", "getData 1 KiB, 32 sessions x 8")]:
    for s in ["zabd", "zookeeper"]:
        pt, tt = med((s, "plain", w), 0), med((s, "tls", w), 0)
        pp, tp = med((s, "plain", w), 1), med((s, "tls", w), 1)
        lines.append(f"| {name} | {s} | {pt:,.0f} | {tt:,.0f} | {tt/pt:.2f} | {pp:.2f} | {tp:.2f} | {tp/pp:.2f} |")
lines.append("")
lines.append("| workload | zabd TLS / ZooKeeper TLS, throughput | zabd TLS / ZooKeeper TLS, p99 |")
lines.append("|---|---:|---:|")
for w in ["set", "get"]:
    lines.append(
        f"| {w} | {med(('zabd','tls',w),0)/med(('zookeeper','tls',w),0):.2f} | "
        f"{med(('zabd','tls',w),1)/med(('zookeeper','tls',w),1):.2f} |"
    )
text = "\n".join(lines)
print(text)
if out:
    open(out, "w").write(text + "\n")
PY
