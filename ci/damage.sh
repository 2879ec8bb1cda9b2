#!/usr/bin/env bash
# ci/damage.sh — the damage matrix (crate nemesis/, `zab-nemesis damage`; README "Damaged
# disks"): one server of a 3-node ensemble has its disk damaged under writes, the servers
# restart in adversarial orders, and the acknowledged writes lost are counted; the same
# script against zabd and Apache ZooKeeper 3.8.
#
#   ci/damage.sh                       every row, zabd, order bc-a (the damaged server B and
#                                      the server C that missed the latest writes restart
#                                      first; the intact, up-to-date A last)
#   ci/damage.sh --quick               CI: the rows below, zabd, shorter phases (~2 minutes)
#   ci/damage.sh --system zabd|zookeeper|both
#   ci/damage.sh --rows a,b            rows: epoch-files, current-epoch, flip-last,
#                                      flip-middle, truncate, snapshot, wipe
#   ci/damage.sh --orders bc-a,ab-c,all
#   ci/damage.sh --seed N              which follower is damaged (default 1)
#   ci/damage.sh --release             build zabd and the suite in release mode
#   ci/damage.sh --cleanup             only remove namespaces a killed run left behind
#
# Exit 1 when a zabd row loses an acknowledged write or does not serve again afterwards
# (ZooKeeper's rows are measured, never judged). The table goes to stdout and to
# target/damage/table.md; each row's folder (server logs, zoo.cfg, acked.txt, lost.txt,
# row.json) to target/damage/. Needs root (ip netns, iptables); installs iproute2, iptables
# (and zookeeper for that system) with apt-get when missing. Namespaces are named zabdmg-*,
# removed on exit, on failure, on Ctrl-C and at the start of the next run.
# Environment: CARGO_TARGET_DIR (as usual), ZABD=path uses that zabd instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

system=zabd
seed=1
rows=""
orders=bc-a
profile=debug
quick=0
cleanup_only=0
# The CI subset: lost epoch files, the issue's currentEpoch scenario, a flipped last record, a cut
# suffix, a wiped data directory.
quick_rows=epoch-files,current-epoch,flip-last,truncate,wipe
while [ $# -gt 0 ]; do
  case "$1" in
    --system) system=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --orders) orders=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --release) profile=release; shift ;;
    --cleanup) cleanup_only=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done
case "$system" in zabd|zookeeper|both) ;; *) echo "--system zabd|zookeeper|both" >&2; exit 64 ;; esac

ci_name=damage
ns_prefix=zabdmg-
# shellcheck source=ci/lib/netns-common.sh
. ci/lib/netns-common.sh
require_root

if [ "$cleanup_only" = 1 ]; then shell_cleanup; exit 0; fi

apt_install iproute2 iptables
if [ "$system" != zabd ]; then apt_install zookeeper; fi

prepare_binaries

args=(damage --system "$system" --seed "$seed" --orders "$orders" --zabd "$bin/zabd"
  --out "$PWD/target/damage")
if [ "$quick" = 1 ]; then
  args+=(--rows "${rows:-$quick_rows}" --load-secs 2 --window-secs 8)
elif [ -n "$rows" ]; then
  args+=(--rows "$rows")
fi
run_suite "${args[@]}"
