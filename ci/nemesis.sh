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

ci_name=nemesis
ns_prefix=zabnem-
# shellcheck source=ci/lib/netns-common.sh
. ci/lib/netns-common.sh
require_root

if [ "$cleanup_only" = 1 ]; then shell_cleanup; exit 0; fi

apt_install iproute2 iptables
if [ "$system" != zabd ]; then apt_install zookeeper; fi

prepare_binaries

args=(run --system "$system" --seed "$seed" --zabd "$bin/zabd" --out "$PWD/target/nemesis")
[ -n "$soak" ] && args+=(--soak "$soak")
[ -n "$only" ] && args+=(--only "$only")
# shellcheck disable=SC2206
[ -n "${NEMESIS_ARGS:-}" ] && args+=(${NEMESIS_ARGS})
run_suite "${args[@]}"
