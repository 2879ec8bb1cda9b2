#!/usr/bin/env bash
# ci/clients.sh — ZooKeeper clients we did not write, unchanged, against zabd.
#
#  1. installs what it needs: Debian's `zookeeper` (zkCli.sh, java, keytool), python3-venv and
#     openssl, then a venv in
#     target/ci-venv with kazoo and pytest from PyPI;
#  2. builds zabd (release) and starts a 3-server ensemble on free loopback ports, plus a
#     standalone zabd started with no arguments in a temporary working directory (port 2181; if
#     2181 is taken, with --client-addr on a free port);
#  3. runs pytest on tests/kazoo/ (kazoo's recipes across the three servers, kazoo's README
#     example against the standalone server);
#  4. drives zkCli.sh through a scripted session against the ensemble and checks its output;
#  5. the TLS round: a second 3-server ensemble with TLS on the client port only
#     (`secureClientPort`, certificates made here with openssl: node 1 reads a PKCS#12 key
#     store, nodes 2 and 3 PEM) and on the quorum (`sslQuorum`), which must pass kazoo's
#     recipe tests over TLS (`use_ssl=True`, client certificate, CA, verify_certs) plus
#     tests/kazoo/test_x509.py (the certificate's subject as Java prints it, computed with
#     ci/X509Subject.java, is the client's x509 id), and zkCli.sh over Netty TLS with PKCS#12
#     stores (whoami, an `auth` ACL that becomes the x509 id, a second certificate refused).
#
#   ci/clients.sh            everything above; exits non-zero on any failure
#   ci/clients.sh --serve    only start the servers, print their addresses and wait (Ctrl-C)
#   ci/clients.sh --tls-only only the TLS round (5)
#
# Every process it starts is stopped on exit. Environment: CARGO_TARGET_DIR (as usual),
# ZABD=path uses that zabd instead of building one, ZAB_CLIENTS_KEEP=1 keeps the servers' logs
# and data (the path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

mode=all
for arg in "$@"; do
  case "$arg" in
    --serve) mode=serve ;;
    --tls-only) mode=tls ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done

started=$SECONDS
work=$(mktemp -d /tmp/zab-clients.XXXXXX)
pids=()
summary=()
failed=0

cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${ZAB_CLIENTS_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    echo "logs and data kept in $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "[clients $((SECONDS - started))s] $*"; }

# Runs a named step, recording its outcome and duration; a failed step fails the script at
# the end but does not stop the others.
step() {
  local name=$1; shift
  local t=$SECONDS
  say "=== $name"
  if "$@"; then
    summary+=("ok    $name ($((SECONDS - t)) s)")
  else
    summary+=("FAIL  $name ($((SECONDS - t)) s)")
    failed=1
  fi
}

# --- 1. install ----------------------------------------------------------------------------
# Only missing packages; another process may hold the dpkg lock (retry); `apt-get update`
# only after an install failed.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local attempt updated=0
  for attempt in $(seq 1 60); do
    if apt-get install -y --no-install-recommends "${missing[@]}" >"$work/apt.log" 2>&1; then
      return 0
    fi
    if grep -q 'Could not get lock\|Unable to acquire the dpkg' "$work/apt.log"; then
      sleep 5
      continue
    fi
    if [ "$updated" = 0 ]; then
      apt-get update >>"$work/apt.log" 2>&1 || true
      updated=1
      continue
    fi
    sleep 5
  done
  cat "$work/apt.log" >&2
  return 1
}

apt_install zookeeper python3-venv openssl
zkcli=/usr/share/zookeeper/bin/zkCli.sh
[ -x "$zkcli" ] || { echo "no $zkcli after installing zookeeper" >&2; exit 1; }

venv=$repo/target/ci-venv
if ! "$venv/bin/python" -c 'import kazoo, pytest' >/dev/null 2>&1; then
  say "creating $venv (kazoo, pytest)"
  rm -rf "$venv"
  mkdir -p "$repo/target"
  python3 -m venv "$venv" || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kazoo pytest
fi
py=$venv/bin/python

# --- 2. build and start the servers ----------------------------------------------------------
if [ -n "${ZABD:-}" ]; then
  zabd=$ZABD
  say "using $zabd"
else
  target=${CARGO_TARGET_DIR:-$repo/target}
  say "building zabd"
  cargo build --release --quiet -p zab-server --bin zabd
  zabd=$target/release/zabd
fi
[ -x "$zabd" ] || { echo "no $zabd" >&2; exit 1; }

free_ports() {
  "$py" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# `fourlw WORD PORT`: the answer of a four-letter word, or nothing.
fourlw() {
  "$py" - "$1" "$2" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2)
    s.sendall(sys.argv[1].encode())
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
    print(out.decode(errors="replace"))
except OSError:
    pass
PY
}

read -r -a ports <<<"$(free_ports 9)"
servers=""
for i in 1 2 3; do
  servers+="server.$i=127.0.0.1:${ports[$((3 * i - 2))]}:${ports[$((3 * i - 1))]}"$'\n'
done
hosts=()
for i in 1 2 3; do
  dir=$work/node$i
  mkdir -p "$dir"
  echo "$i" >"$dir/myid"
  client_port=${ports[$((3 * i - 3))]}
  cat >"$dir/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
maxSessionTimeout=30000
dataDir=$dir
clientPort=$client_port
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
$servers
CFG
  RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$zabd" --config "$dir/zoo.cfg" >"$dir/zabd.log" 2>&1 </dev/null &
  pids+=($!)
  hosts+=("127.0.0.1:$client_port")
done
ensemble=$(IFS=,; echo "${hosts[*]}")
ensemble_pids=$(IFS=,; echo "${pids[*]}")

# The standalone server, exactly as a user starts it: `zabd` with no arguments.
standalone_dir=$work/standalone
mkdir -p "$standalone_dir"
# (SO_REUSEADDR like zabd's listener: connections in TIME_WAIT do not make the port taken.)
if "$py" -c 'import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 2181)); s.listen()' 2>/dev/null; then
  standalone=127.0.0.1:2181
  (cd "$standalone_dir" && NO_COLOR=1 exec "$zabd" >zabd.log 2>&1 </dev/null) &
else
  standalone=127.0.0.1:$(free_ports 1)
  say "port 2181 is taken: the standalone zabd uses $standalone"
  (cd "$standalone_dir" && NO_COLOR=1 exec "$zabd" --client-addr "$standalone" >zabd.log 2>&1 </dev/null) &
fi
pids+=($!)

# `count_words W A B C...`: how many of A B C... are W.
count_words() {
  local w=$1 n=0 m; shift
  for m in "$@"; do
    if [ "$m" = "$w" ]; then n=$((n + 1)); fi
  done
  echo "$n"
}

wait_serving() {
  local deadline=$((SECONDS + 120)) modes
  while :; do
    modes=""
    for h in "${hosts[@]}" "$standalone"; do
      modes+="$(fourlw srvr "${h##*:}" | sed -n 's/^Mode: //p') "
    done
    if [ "$(count_words leader $modes)" = 1 ] && [ "$(count_words follower $modes)" = 2 ] &&
      [ "$(count_words standalone $modes)" = 1 ]; then
      say "serving: ensemble $ensemble ($modes), standalone $standalone"
      return 0
    fi
    if [ $SECONDS -gt $deadline ]; then
      echo "servers not serving after 120 s: modes [$modes]" >&2
      tail -n 30 "$work"/node*/zabd.log "$standalone_dir/zabd.log" >&2
      return 1
    fi
    sleep 0.2
  done
}
[ "$mode" = tls ] || wait_serving

if [ "$mode" = serve ]; then
  echo "ZAB_HOSTS=$ensemble ZAB_STANDALONE=$standalone  (data in $work; Ctrl-C stops)"
  wait
  exit 0
fi

# --- 3. kazoo ----------------------------------------------------------------------------------
run_pytest() {
  ZAB_HOSTS=$ensemble ZAB_PIDS=$ensemble_pids ZAB_STANDALONE=$standalone \
    "$venv/bin/pytest" -q -p no:cacheprovider -o console_output_style=classic \
    "$repo/tests/kazoo"
}
[ "$mode" = tls ] || step "kazoo: recipes on 3 servers, README example on standalone zabd" run_pytest

# --- 4. zkCli.sh -------------------------------------------------------------------------------
# `zkcli SERVER <<<commands`: one zkCli session reading commands from stdin.
zkcli_session() {
  local server=$1
  JAVA_OPTS=${JAVA_OPTS:-} timeout 120 "$zkcli" -server "$server" 2>&1 | tr -d '\r'
}

# Checks that $out contains every given line fragment, in order.
expect_in_order() {
  local out=$1; shift
  "$py" - "$out" "$@" <<'PY'
import sys
text, wanted = sys.argv[1], sys.argv[2:]
pos = 0
for w in wanted:
    i = text.find(w, pos)
    if i < 0:
        print(f"zkCli output lacks {w!r} (after offset {pos}); output was:\n{text}", file=sys.stderr)
        sys.exit(1)
    pos = i + len(w)
PY
}

run_zkcli() {
  local digest out1 out2
  digest=alice:$("$py" -c 'import hashlib,base64;print(base64.b64encode(hashlib.sha1(b"alice:secret").digest()).decode())')
  [ "$digest" = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=" ] || { echo "digest $digest" >&2; return 1; }
  out1=$(zkcli_session "${hosts[0]}" <<CMDS
create /zkcli top
create -s -e /zkcli/e- first
get -s /zkcli/e-0000000000
ls /zkcli
set /zkcli/e-0000000000 second
get /zkcli/e-0000000000
create /zkcli/secret hidden
addauth digest alice:secret
setAcl /zkcli/secret digest:$digest:cdrwa
getAcl /zkcli/secret
get /zkcli/secret
stat /zkcli
delete /zkcli/e-0000000000
ls /zkcli
quit
CMDS
  )
  echo "$out1" >"$work/zkcli-1.out"
  expect_in_order "$out1" \
    "Created /zkcli" \
    "Created /zkcli/e-0000000000" \
    "first" "cZxid = 0x" "ctime = " "mZxid = 0x" "dataVersion = 0" "aclVersion = 0" \
    "ephemeralOwner = 0x" "dataLength = 5" "numChildren = 0" \
    "[e-0000000000]" \
    "second" \
    "Created /zkcli/secret" \
    "'digest,'$digest" ": cdrwa" \
    "hidden" \
    "cversion = 2" "numChildren = 2" \
    "[secret]" || return 1
  if grep -qi 'exception\|error' <<<"$out1"; then
    echo "zkCli reported an error:" >&2
    grep -i 'exception\|error' <<<"$out1" >&2
    return 1
  fi
  # A second session on another server: without the digest, reading is refused; the
  # ephemeral of the first (closed) session is gone.
  out2=$(zkcli_session "${hosts[1]}" <<CMDS
sync /zkcli
ls /zkcli
get /zkcli/secret
getAcl /zkcli/secret
addauth digest alice:secret
get /zkcli/secret
delete /zkcli/secret
delete /zkcli
ls /zkcli
quit
CMDS
  )
  echo "$out2" >"$work/zkcli-2.out"
  expect_in_order "$out2" \
    "[secret]" \
    "Insufficient permission : /zkcli/secret" \
    "Insufficient permission : /zkcli/secret" \
    "hidden" \
    "Node does not exist: /zkcli" || return 1
}
[ "$mode" = tls ] || step "zkCli.sh: scripted session against the ensemble" run_zkcli

# The Java client's reconnection: zkCli, given the two followers, sets watches; the follower it
# is on freezes (SIGSTOP; no election follows); another client changes the watched nodes;
# zkCli moves to the other follower with its session, re-sending its watches with SetWatches,
# and must see every event without being disconnected again.
wait_for_text() {
  local file=$1 text=$2 count=${3:-1} deadline=$((SECONDS + 60))
  until [ "$(grep -cF -- "$text" "$file" || true)" -ge "$count" ]; do
    if [ $SECONDS -gt $deadline ]; then
      echo "zkCli output lacks $count x '$text' after 60 s; output was:" >&2
      cat "$file" >&2
      return 1
    fi
    sleep 0.1
  done
}

run_zkcli_failover() {
  local fifo=$work/zkcli.in out=$work/zkcli-3.out zk_pid i on="" frozen_pid rc=0 followers=()
  for i in 0 1 2; do
    if [ "$(fourlw srvr "${hosts[$i]##*:}" | sed -n 's/^Mode: //p')" = follower ]; then
      followers+=("${hosts[$i]}")
    fi
  done
  [ ${#followers[@]} = 2 ] || { echo "expected two followers, got ${followers[*]}" >&2; return 1; }
  mkfifo "$fifo"
  timeout 180 "$zkcli" -timeout 6000 -server "$(IFS=,; echo "${followers[*]}")" \
    <"$fifo" >"$out" 2>&1 &
  zk_pid=$!
  exec 7>"$fifo"
  {
    echo "create /zkw v0"
    echo "get -w /zkw"
    echo "ls -w /zkw"
    echo "stat -w /zkw/later"
    echo "sync /zkw"
  } >&7
  wait_for_text "$out" "Sync is OK" || rc=1
  # The server zkCli is on: the only one with an established session.
  for i in 0 1 2; do
    if [ -z "$on" ] && fourlw cons "${hosts[$i]##*:}" | grep -q 'sid=0x'; then on=$i; fi
  done
  if [ "$rc" = 0 ] && [ -n "$on" ]; then
    frozen_pid=${pids[$on]}
    say "zkCli is on server $((on + 1)); freezing it"
    kill -STOP "$frozen_pid"
    local others=() j
    for j in 0 1 2; do [ "$j" = "$on" ] || others+=("${hosts[$j]}"); done
    "$py" - "$(IFS=,; echo "${others[*]}")" <<'PY' || rc=1
import sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=10.0)
zk.start(timeout=60)
zk.set("/zkw", b"v1")
zk.create("/zkw/child", b"")
zk.create("/zkw/later", b"")
zk.stop()
PY
    wait_for_text "$out" "type:NodeDataChanged path:/zkw" || rc=1
    wait_for_text "$out" "type:NodeChildrenChanged path:/zkw" || rc=1
    wait_for_text "$out" "type:NodeCreated path:/zkw/later" || rc=1
    kill -CONT "$frozen_pid"
    {
      echo "get /zkw"
      echo "deleteall /zkw"
      echo "quit"
    } >&7
  else
    [ -n "$on" ] || { echo "no server lists zkCli's session" >&2; rc=1; }
    echo "quit" >&7
  fi
  exec 7>&-
  wait "$zk_pid" || true
  if [ "$rc" = 0 ]; then
    # After the move the session is the same (no Expired) and zkCli reads the new data.
    expect_in_order "$(tr -d '\r' <"$out")" "Created /zkw" "v0" "[]" \
      "state:SyncConnected type:None" "v1" || rc=1
    if grep -q 'state:Expired' "$out"; then
      echo "zkCli's session expired during the move" >&2
      rc=1
    fi
    if [ "$(grep -c 'state:Disconnected' "$out" || true)" != 1 ]; then
      echo "zkCli was disconnected more than once (a reply it could not match?):" >&2
      cat "$out" >&2
      rc=1
    fi
  fi
  return "$rc"
}
[ "$mode" = tls ] ||
  step "zkCli.sh: watches survive a move to another server (SetWatches)" run_zkcli_failover

# --- 5. the TLS round ----------------------------------------------------------------------------
# The plaintext servers are stopped first: the machine has two cores.
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
tls=$work/tls
mkdir -p "$tls"
tls_pass=zab-ci-secret

# `leaf NAME SUBJECT EXTENSIONS`: NAME.crt and NAME.key (P-256, PKCS#8) signed by the CI CA.
leaf() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls/$1.key" \
    -out "$tls/$1.csr" -subj "$2" 2>/dev/null &&
    openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
      -days 2 -out "$tls/$1.crt" -extfile <(printf '%s\n' "$3") 2>/dev/null
}

make_pki() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls/ca.key" \
    -out "$tls/ca.pem" -days 2 -subj "/CN=zab CI CA" 2>/dev/null || return 1
  # A certificate per node, for its client port and its quorum links (server and client
  # usage): all three are 127.0.0.1, so quorum TLS tells them apart by the URI zab:server.N.
  local i
  for i in 1 2 3; do
    leaf "server$i" "/CN=zab server $i" \
      "subjectAltName=DNS:localhost,IP:127.0.0.1,URI:zab:server.$i
extendedKeyUsage=serverAuth,clientAuth" || return 1
    cat "$tls/server$i.crt" "$tls/server$i.key" >"$tls/server$i.pem"
    openssl pkcs12 -export -in "$tls/server$i.crt" -inkey "$tls/server$i.key" \
      -certfile "$tls/ca.pem" -passout "pass:$tls_pass" -out "$tls/server$i.p12" || return 1
  done
  # Clients: a subject with every escape Java's RFC 2253 form has (a comma, a literal +, a
  # multi-valued RDN, a leading space, an attribute written as OID=#hex), and a plain one.
  leaf client '/C=US/O=Acme, Inc./OU=dev\+ops+UID=k1/CN= kazoo client/emailAddress=kazoo@example.com' \
    "extendedKeyUsage=clientAuth" || return 1
  leaf other "/C=US/O=Acme, Inc./CN=other client" "extendedKeyUsage=clientAuth" || return 1
  for c in client other; do
    openssl pkcs12 -export -in "$tls/$c.crt" -inkey "$tls/$c.key" -passout "pass:$tls_pass" \
      -out "$tls/$c.p12" || return 1
  done
  keytool -importcert -noprompt -alias ca -file "$tls/ca.pem" -keystore "$tls/trust.p12" \
    -storetype PKCS12 -storepass "$tls_pass" >/dev/null 2>&1
}
make_pki || { echo "cannot make the TLS certificates" >&2; exit 1; }
{ read -r x509_dn && read -r other_dn; } < <(java "$repo/ci/X509Subject.java" "$tls/client.crt" "$tls/other.crt")
say "TLS client subjects as Java writes them: [$x509_dn] [$other_dn]"

# `fourlw_tls WORD PORT`: a four-letter word over TLS with the client certificate.
fourlw_tls() {
  "$py" - "$1" "$2" "$tls" <<'PY'
import socket, ssl, sys
word, port, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
    ctx.load_cert_chain(f"{d}/client.crt", f"{d}/client.key")
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=2),
                         server_hostname="localhost") as s:
        s.sendall(word.encode())
        out = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            out += b
        print(out.decode(errors="replace"))
except (OSError, ssl.SSLError):
    pass
PY
}

read -r -a tports <<<"$(free_ports 9)"
tservers=""
for i in 1 2 3; do
  tservers+="server.$i=127.0.0.1:${tports[$((3 * i - 2))]}:${tports[$((3 * i - 1))]}"$'\n'
done
thosts=()
for i in 1 2 3; do
  dir=$work/tls-node$i
  mkdir -p "$dir"
  echo "$i" >"$dir/myid"
  if [ "$i" = 1 ]; then
    keystore="ssl.keyStore.location=$tls/server$i.p12
ssl.keyStore.password=$tls_pass
ssl.keyStore.type=PKCS12"
  else
    keystore="ssl.keyStore.location=$tls/server$i.pem
ssl.keyStore.type=PEM"
  fi
  cat >"$dir/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
maxSessionTimeout=30000
dataDir=$dir
secureClientPort=${tports[$((3 * i - 3))]}
secureClientPortAddress=127.0.0.1
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider
$keystore
ssl.trustStore.location=$tls/ca.pem
ssl.trustStore.type=PEM
ssl.clientAuth=need
sslQuorum=true
ssl.quorum.keyStore.location=$tls/server$i.pem
ssl.quorum.keyStore.type=PEM
ssl.quorum.trustStore.location=$tls/ca.pem
ssl.quorum.trustStore.type=PEM
4lw.commands.whitelist=*
admin.enableServer=false
$tservers
CFG
  RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$zabd" --config "$dir/zoo.cfg" >"$dir/zabd.log" 2>&1 </dev/null &
  pids+=($!)
  thosts+=("127.0.0.1:${tports[$((3 * i - 3))]}")
done
tensemble=$(IFS=,; echo "${thosts[*]}")

wait_serving_tls() {
  local deadline=$((SECONDS + 120)) modes
  while :; do
    modes=""
    for h in "${thosts[@]}"; do
      modes+="$(fourlw_tls srvr "${h##*:}" | sed -n 's/^Mode: //p') "
    done
    if [ "$(count_words leader $modes)" = 1 ] && [ "$(count_words follower $modes)" = 2 ]; then
      say "serving over TLS: $tensemble ($modes)"
      return 0
    fi
    if [ $SECONDS -gt $deadline ]; then
      echo "TLS servers not serving after 120 s: modes [$modes]" >&2
      tail -n 30 "$work"/tls-node*/zabd.log >&2
      return 1
    fi
    sleep 0.2
  done
}

run_pytest_tls() {
  wait_serving_tls || return 1
  ZAB_HOSTS=$tensemble ZAB_TLS="$tls/ca.pem,$tls/client.crt,$tls/client.key" \
    ZAB_TLS_OTHER="$tls/other.crt,$tls/other.key" ZAB_X509_DN=$x509_dn \
    "$venv/bin/pytest" -q -p no:cacheprovider -o console_output_style=classic \
    "$repo/tests/kazoo/test_recipes.py" "$repo/tests/kazoo/test_x509.py"
}
step "TLS: kazoo recipes and x509 ACLs over TLS on 3 servers with quorum TLS" run_pytest_tls

# zkCli over Netty TLS with PKCS#12 stores (`zkcli_tls P12 SERVER <<<commands`). Debian's
# zookeeper.jar lists netty-handler but not netty-codec and netty-resolver, which its
# SslHandler needs: the class path is given again with them (java takes the last -cp).
zkcli_tls() {
  CLIENT_JVMFLAGS="-cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar \
    -Dzookeeper.client.secure=true \
    -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
    -Dzookeeper.ssl.keyStore.location=$tls/$1 -Dzookeeper.ssl.keyStore.password=$tls_pass \
    -Dzookeeper.ssl.keyStore.type=PKCS12 -Dzookeeper.ssl.trustStore.location=$tls/trust.p12 \
    -Dzookeeper.ssl.trustStore.password=$tls_pass -Dzookeeper.ssl.trustStore.type=PKCS12" \
    timeout 120 "$zkcli" -server "$2" 2>&1 | tr -d '\r'
}

run_zkcli_tls() {
  local out1 out2
  out1=$(zkcli_tls client.p12 "${thosts[0]}" <<CMDS
whoami
create /zkcli-tls top
create /zkcli-tls/secret hidden
setAcl /zkcli-tls/secret auth::cdrwa
getAcl /zkcli-tls/secret
get /zkcli-tls/secret
quit
CMDS
  )
  echo "$out1" >"$work/zkcli-tls-1.out"
  # getAcl prints the Id record as jute's CSV, which writes a comma in the id as %2C.
  local dn_csv
  dn_csv=$(sed 's/%/%25/g; s/,/%2C/g' <<<"$x509_dn")
  expect_in_order "$out1" "x509: $x509_dn" "Created /zkcli-tls" "Created /zkcli-tls/secret" \
    "'x509,'$dn_csv" ": cdrwa" "hidden" || return 1
  out2=$(zkcli_tls other.p12 "${thosts[1]}" <<CMDS
whoami
sync /zkcli-tls
ls /zkcli-tls
get /zkcli-tls/secret
delete /zkcli-tls/secret
delete /zkcli-tls
quit
CMDS
  )
  echo "$out2" >"$work/zkcli-tls-2.out"
  expect_in_order "$out2" "x509: $other_dn" "[secret]" \
    "Insufficient permission : /zkcli-tls/secret" || return 1
  if grep -q "hidden" <<<"$out2"; then
    echo "the other certificate read the secret:" >&2
    echo "$out2" >&2
    return 1
  fi
}
step "TLS: zkCli.sh over Netty TLS (PKCS#12 stores, x509 identity and ACL)" run_zkcli_tls

# --- summary -----------------------------------------------------------------------------------
echo
echo "=== ci/clients.sh summary ($((SECONDS - started)) s)"
for line in "${summary[@]}"; do echo "  $line"; done
if [ "$failed" != 0 ]; then
  for f in "$work"/node*/zabd.log "$work"/tls-node*/zabd.log "$standalone_dir/zabd.log"; do
    echo "----- $f (last 40 lines)"
    tail -n 40 "$f"
  done
  echo "client tests FAILED"
  exit 1
fi
echo "client tests passed"
