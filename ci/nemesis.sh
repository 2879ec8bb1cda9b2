#!/usr/bin/env bash
# ci/nemesis.sh — the Jepsen-style nemesis suite (crate nemesis/, binary zab-nemesis): real
# servers in network namespaces under kills, pauses, partitions, packet loss and storage damage;
# register histories checked for linearizability, creates for durability, ephemerals, crashes.
#
#   ci/nemesis.sh                      a short seeded round against zabd: every nemesis once
#                                      plus one random combination (CI; about 2 minutes)
#   ci/nemesis.sh --soak MINUTES       random schedules for MINUTES (per system)
#   ci/nemesis.sh --system zabd|zookeeper|both
#                                      the system(s) under test (both: zabd then ZooKeeper 3.8,
#                                      same seed, availability side by side)
#   ci/nemesis.sh --seed N             the seed (default 1; a failure prints its seed)
#   ci/nemesis.sh --only A,B           only these nemeses, once each (names: zab-nemesis run
#                                      --help); storage-epoch-quorum runs only this way
#   ci/nemesis.sh --release            build zabd and the suite in release mode (soaks)
#   ci/nemesis.sh --cleanup            only remove namespaces a killed run left behind
#
# Needs root (ip netns, iptables). Installs iproute2, iptables (and zookeeper for that system)
# with apt-get when missing. Every namespace it creates is named zabnem-*; they and every
# process in them are removed on exit, on failure and on Ctrl-C, and at the start of the next
# run. Run folders (history.jsonl, server logs, report.txt) go to target/nemesis/.
# Environment: CARGO_TARGET_DIR (as usual), ZABD=path uses that zabd instead of building one,
# NEMESIS_ARGS adds arguments to `zab-nemesis run`.
set -euo pipefail
cd "$(dirname "$0")/.."

system=zabd
seed=1
soak=""
only=""
profile=debug
cleanup_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --system) system=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --soak) soak=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --release) profile=release; shift ;;
    --cleanup) cleanup_only=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done
case "$system" in zabd|zookeeper|both) ;; *) echo "--system zabd|zookeeper|both" >&2; exit 64 ;; esac

if [ "$(id -u)" != 0 ]; then
  echo "ci/nemesis.sh needs root (network namespaces, iptables)" >&2
  exit 1
fi

# Shell-level cleanup, for when the binary itself is gone (killed with -9): every process in a
# zabnem-* namespace (by pid), then the namespace.
shell_cleanup() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^zabnem-' || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      [ "$pid" = $$ ] || kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
}

apt_install() {
  local missing=() p attempt
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  echo "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  for attempt in $(seq 1 60); do
    if apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/zab-nemesis-apt.log 2>&1; then
      return 0
    fi
    if [ "$attempt" = 1 ]; then apt-get update >/dev/null 2>&1 || true; fi
    sleep 5
  done
  cat /tmp/zab-nemesis-apt.log >&2
  return 1
}

if [ "$cleanup_only" = 1 ]; then shell_cleanup; exit 0; fi

apt_install iproute2 iptables
if [ "$system" != zabd ]; then apt_install zookeeper; fi

target=${CARGO_TARGET_DIR:-$PWD/target}
flag=""
[ "$profile" = release ] && flag=--release
if [ -n "${ZABD:-}" ]; then
  zabd=$ZABD
  cargo build --locked $flag --quiet -p zab-nemesis
else
  cargo build --locked $flag --quiet -p zab-nemesis -p zab-server --bin zab-nemesis --bin zabd
  zabd=$target/$profile/zabd
fi
# The binaries are copied: another build into the same target folder must not swap them
# under a running suite.
bin=$(mktemp -d /tmp/zab-nemesis-bin.XXXXXX)
cp "$target/$profile/zab-nemesis" "$bin/"
cp "$zabd" "$bin/zabd"

trap 'rc=$?; shell_cleanup; rm -rf "$bin"; exit $rc' EXIT
trap 'exit 130' INT TERM

args=(run --system "$system" --seed "$seed" --zabd "$bin/zabd" --out "$PWD/target/nemesis")
[ -n "$soak" ] && args+=(--soak "$soak")
[ -n "$only" ] && args+=(--only "$only")
# shellcheck disable=SC2206
[ -n "${NEMESIS_ARGS:-}" ] && args+=(${NEMESIS_ARGS})
echo "zab-nemesis ${args[*]}  (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
start=$SECONDS
set +e
"$bin/zab-nemesis" "${args[@]}" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' INT TERM
wait "$child"
rc=$?
set -e
echo "ci/nemesis.sh: $((SECONDS - start)) s, exit $rc (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$rc"
