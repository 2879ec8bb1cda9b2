#!/usr/bin/env bash
# ci/test.sh — the project's test command (README "Run the tests"); `.ci/run` calls it.
#
# Installs what it needs, then runs, in order: formatting, lints, every test of the
# workspace, the client compatibility tests (ci/clients.sh), the ZooKeeper migration round
# trip (ci/migrate.sh), a nemesis round (ci/nemesis.sh), the damage matrix's short variant
# (ci/damage.sh --quick), the CI model check, the
# counterexample charts in headless Chromium (ci/charts.sh), loom and the TLA+ mirror check
# (ci/tla.sh). Deep checks (long simulation sweeps, deep model checks) are behind a flag
# (see `ci/test.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

deep=0
for arg in "$@"; do
  case "$arg" in
    --deep) deep=1 ;;
    -h|--help)
      sed -n '2,10p' "$0"
      echo "  --deep   also run the deep checks: simulation sweeps, larger TLC and model checks (hours)"
      exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done

step() {
  local name=$1; shift
  echo
  echo "=== $name"
  local start=$SECONDS
  "$@"
  echo "=== $name: ok ($((SECONDS - start)) s)"
}

step "rustfmt" cargo fmt --all --check
step "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "tests" cargo test --workspace --locked
# ZooKeeper clients we did not write (kazoo's recipes, zkCli.sh) against zabd; installs Debian's
# zookeeper and a kazoo venv itself, and reuses the zabd that `cargo test` just built.
step "client compatibility (kazoo, zkCli.sh)" \
  env ZABD="${CARGO_TARGET_DIR:-$PWD/target}/debug/zabd" ci/clients.sh
# Moving a ZooKeeper 3.8 dataDir to zabd and back (README "Migrating from ZooKeeper"), against
# the real ZooKeeper: import, serve every node identically, export, ZooKeeper serves it again.
step "ZooKeeper migration round trip (import, export)" \
  env ZABD="${CARGO_TARGET_DIR:-$PWD/target}/debug/zabd" \
  PROBE="${CARGO_TARGET_DIR:-$PWD/target}/debug/examples/migrate_probe" ci/migrate.sh
# Jepsen-style faults against real zabd processes in network namespaces: every nemesis once,
# seeded; installs iproute2 and iptables itself (README "The nemesis suite").
step "nemesis round (kills, pauses, partitions, loss, storage damage)" \
  env ZABD="${CARGO_TARGET_DIR:-$PWD/target}/debug/zabd" ci/nemesis.sh --seed 1
# One server's disk damaged under writes (epoch files lost, currentEpoch lost, bit flip in the
# last fsynced record, fsynced suffix cut, dataDir wiped), restarted with the server that missed the latest writes
# before the intact one: no acknowledged write may be lost (README "Damaged disks").
step "damage matrix (one server's disk damaged, adversarial restarts)" \
  env ZABD="${CARGO_TARGET_DIR:-$PWD/target}/debug/zabd" ci/damage.sh --quick
# The AdminServer key sets impl/tests/admin_server.rs compares zabd with, re-recorded from a
# live Debian ZooKeeper 3.8 (standalone and a 3-server ensemble) and diffed with the fixture.
step "ZooKeeper AdminServer keys (live ZooKeeper vs fixture)" ci/admin-keys.sh --check
step "build the model checker" cargo build --release --locked -p zab-model
# A time-boxed simulation sweep: as many 20 s seeds of 3 servers with every fault as fit in
# 120 s of wall time, from seed 0 (how many depends on the machine; the sweep prints it with
# its simulated-to-real time ratio and the load average). The debug build `cargo test` just
# made (about 20x real time on an idle core) spares CI a release build of the server.
step "deterministic simulation (time-boxed sweep, 120 s)" \
  cargo run --locked -p zab-refinement --bin zab-sim -- sweep --from 0 --time-budget 120s
# The CI configuration: exhaustive, every invariant, every example reached (README has the figures).
step "model check (CI configuration)" \
  ./target/release/zab-model check --servers 3 --txns 1 --crashes 1 --partitions 1 \
  --timeouts 1 --snapshots 1 --epochs 2 --threads 2
# Counterexamples as a person sees them: the HTML report and the Explorer page of
# ZOOKEEPER-4646's counterexample and a failed simulation's report, rendered in headless
# Chromium, checked by DOM assertions; screenshots kept in target/charts/.
step "charts (report, Explorer, zab-sim report in Chromium)" ci/charts.sh
# loom: every interleaving (up to 3 preemptions) of the log writer's hand-off.
step "loom (log writer hand-off)" \
  env RUSTFLAGS="--cfg zab_loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/loom" \
  cargo test --locked --release -p zab-server --lib loom
# tla/Zab.tla mirrors the model: TLC (from PyPI) counts the same states and finds the same bugs.
step "TLA+ mirror (TLC)" ci/tla.sh

if [ "$deep" = 1 ]; then
  step "deterministic simulation with storage faults (3 seeds, ignored in the quick run)" \
    cargo test --locked -p zab-refinement --test simulation -- --ignored
  step "deterministic simulation (200 seeds of 3 servers, 20 s each)" \
    cargo run --locked --release -p zab-refinement --bin zab-sim -- sweep --from 0 --count 200
  step "deterministic simulation (50 seeds of 5 servers)" \
    cargo run --locked --release -p zab-refinement --bin zab-sim -- sweep --from 0 --count 50 --servers 5
  step "TLA+ mirror (larger and deep configurations)" ci/tla.sh --full --deep --skip bug example
  step "model check (deep configuration, depth-first)" \
    ./target/release/zab-model check --servers 3 --txns 2 --crashes 1 --partitions 1 \
    --timeouts 1 --snapshots 1 --epochs 2 --threads 2 --dfs
fi
echo
echo "all checks passed"
