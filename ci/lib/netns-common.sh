# ci/lib/netns-common.sh — what ci/nemesis.sh and ci/damage.sh share: the root check, the
# removal of their network namespaces, apt-get installs, building and copying zabd and
# zab-nemesis, and running zab-nemesis with Ctrl-C forwarded and the time and load printed.
# Sourced (not run) after the caller sets:
#   ci_name    the script's name, for messages and temporary files (nemesis, damage)
#   ns_prefix  the prefix of every namespace the suite creates (zabnem-, zabdmg-)
#   profile    debug or release
# shellcheck shell=bash

require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "ci/$ci_name.sh needs root (network namespaces, iptables)" >&2
    exit 1
  fi
}

# Shell-level cleanup, for when the binary itself is gone (killed with -9): every process in
# one of our namespaces (by pid), then the namespace.
shell_cleanup() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$ns_prefix" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      [ "$pid" = $$ ] || kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
}

apt_install() {
  local missing=() p attempt log="/tmp/zab-$ci_name-apt.log"
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  echo "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  for attempt in $(seq 1 60); do
    if apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
      return 0
    fi
    if [ "$attempt" = 1 ]; then apt-get update >/dev/null 2>&1 || true; fi
    sleep 5
  done
  cat "$log" >&2
  return 1
}

# Builds zab-nemesis (and zabd, unless ZABD names one) and copies both into a fresh folder
# $bin: another build into the same target folder must not swap them under a running suite.
# Sets bin; the EXIT trap it installs removes the namespaces and $bin.
prepare_binaries() {
  local target flag="" zabd
  target=${CARGO_TARGET_DIR:-$PWD/target}
  [ "$profile" = release ] && flag=--release
  if [ -n "${ZABD:-}" ]; then
    zabd=$ZABD
    cargo build --locked $flag --quiet -p zab-nemesis
  else
    cargo build --locked $flag --quiet -p zab-nemesis -p zab-server --bin zab-nemesis --bin zabd
    zabd=$target/$profile/zabd
  fi
  bin=$(mktemp -d "/tmp/zab-$ci_name-bin.XXXXXX")
  cp "$target/$profile/zab-nemesis" "$bin/"
  cp "$zabd" "$bin/zabd"
  trap 'rc=$?; shell_cleanup; rm -rf "$bin"; exit $rc' EXIT
  trap 'exit 130' INT TERM
}

# Runs "$bin/zab-nemesis" with the arguments given, forwarding Ctrl-C and SIGTERM to it, and
# exits with its exit code after printing the time and load average.
run_suite() {
  local child rc start
  echo "zab-nemesis $*  ($(date -u +%FT%TZ), load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  start=$SECONDS
  set +e
  "$bin/zab-nemesis" "$@" &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' INT TERM
  wait "$child"
  rc=$?
  set -e
  echo "ci/$ci_name.sh: $((SECONDS - start)) s, exit $rc (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  exit "$rc"
}
