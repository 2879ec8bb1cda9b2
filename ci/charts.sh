#!/usr/bin/env bash
# ci/charts.sh — counterexamples as a person sees them, in headless Chromium.
#
# Renders the HTML report of ZOOKEEPER-4646's counterexample (`zab-model check --report`), the
# Stateright Explorer page of that path (`zab-model explore`), and the report of a failed
# simulation (`zab-sim run --report`, the finding seed of --bug paper-redundant-propose), checks
# each page's DOM after its scripts ran (lanes, arrows, the crash, the lost write, the
# highlighted step: ci/charts_check.py), and keeps pages, DOMs and screenshots in
# target/charts/ (CHARTS_OUT). Installs Debian's chromium if it is missing. No network besides
# the loopback Explorer.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-$PWD/target}
model=${ZAB_MODEL:-$target/release/zab-model}
sim=${ZAB_SIM:-$target/debug/zab-sim}
out=${CHARTS_OUT:-$PWD/target/charts}
say() { echo "charts: $*"; }

# --- chromium --------------------------------------------------------------------------------
apt_install() {
  local missing=() p attempt
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  for attempt in $(seq 1 40); do
    if apt-get -o DPkg::Lock::Timeout=60 install -y --no-install-recommends "${missing[@]}" \
        >/tmp/zab-charts-apt.log 2>&1; then
      return 0
    fi
    [ "$attempt" = 1 ] && { apt-get update >>/tmp/zab-charts-apt.log 2>&1 || true; }
    sleep 5
  done
  cat /tmp/zab-charts-apt.log >&2
  return 1
}
command -v chromium >/dev/null 2>&1 || apt_install chromium
apt_install fonts-dejavu-core

# --- binaries --------------------------------------------------------------------------------
[ -x "$model" ] || cargo build --release --locked -p zab-model
[ -x "$sim" ] || cargo build --locked -p zab-refinement --bin zab-sim

rm -rf "$out"
mkdir -p "$out"
profile=$(mktemp -d)
explorer_pid=
cleanup() {
  [ -n "$explorer_pid" ] && kill "$explorer_pid" 2>/dev/null || true
  rm -rf "$profile"
}
trap cleanup EXIT

browser() { # browser ARGS... : headless Chromium, own profile, bounded
  timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --hide-scrollbars --user-data-dir="$profile" "$@" 2>>"$out/chromium.log"
}
dom() { browser --virtual-time-budget=15000 --dump-dom "$1" >"$2"; }
shot() { browser --virtual-time-budget=15000 --window-size="$3" --screenshot="$2" "$1" >/dev/null; }

# --- 1. zab-model check --report: ZOOKEEPER-4646 -------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
flags="--bug zk4646 --init epoch1 --txns 2 --crashes 2 --epochs 3 --timeouts 0 --snapshots 0"
rc=0
# shellcheck disable=SC2086
"$model" check $flags --explorer "127.0.0.1:$port" --report "$out/zk4646-report.html" \
  >"$out/zk4646-check.txt" || rc=$?
if [ "$rc" != 1 ] || [ ! -s "$out/zk4646-report.html" ]; then
  cat "$out/zk4646-check.txt"
  say "expected a counterexample (exit 1) and a report; got exit $rc"
  exit 1
fi
link=$(sed -n 's/^explorer: //p' "$out/zk4646-check.txt" | head -1)
say "counterexample found; Explorer link $link"
dom "file://$out/zk4646-report.html" "$out/zk4646-report.dom.html"
shot "file://$out/zk4646-report.html" "$out/zk4646-report.png" 1400,3000
# The chart alone, at its own size (README's docs/zk4646-chart.png is this, through pngquant).
python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
page = open(f"{out}/zk4646-report.html", encoding="utf-8").read()
svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
w, h = (re.search(rf"{k}='(\d+)'", svg).group(1) for k in ("width", "height"))
open(f"{out}/zk4646-chart.html", "w", encoding="utf-8").write(
    f"<!DOCTYPE html><html><body style='margin:0'>{svg}</body></html>")
open(f"{out}/zk4646-chart.size", "w").write(f"{w},{int(h) - 40}")
PY
shot "file://$out/zk4646-chart.html" "$out/zk4646-chart.png" "$(cat "$out/zk4646-chart.size")"

# --- 2. the Explorer page of that path ----------------------------------------------------
# shellcheck disable=SC2086
"$model" explore $flags --addr "127.0.0.1:$port" >"$out/explorer.log" 2>&1 &
explorer_pid=$!
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.2
done
dom "$link" "$out/zk4646-explorer.dom.html"
shot "$link" "$out/zk4646-explorer.png" 1700,1400
kill "$explorer_pid" 2>/dev/null || true
explorer_pid=

# --- 3. zab-sim run --report: a simulation that finds a bug switch ------------------------
rc=0
"$sim" run --seed 1 --safety-ms 3000 --bug paper-redundant-propose \
  --report "$out/sim-report.html" >"$out/sim.txt" || rc=$?
if [ "$rc" != 1 ] || [ ! -s "$out/sim-report.html" ]; then
  cat "$out/sim.txt"
  say "expected the simulation to fail (exit 1) with a report; got exit $rc"
  exit 1
fi
dom "file://$out/sim-report.html" "$out/sim-report.dom.html"
shot "file://$out/sim-report.html" "$out/sim-report.png" 1400,3000

# --- 4. what a reader sees ------------------------------------------------------------------
python3 ci/charts_check.py "$out"
say "ok: pages, DOMs and screenshots in $out"
