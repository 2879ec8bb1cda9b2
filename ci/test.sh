#!/usr/bin/env bash
# ci/test.sh — the project's test command (README "Run the tests"); `.ci/run` calls it.
#
# Installs what it needs, then runs, in order: formatting, lints, every test of the
# workspace, and the CI model check. Deep checks are behind flags (see `ci/test.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

deep=0
for arg in "$@"; do
  case "$arg" in
    --deep) deep=1 ;;
    -h|--help)
      sed -n '2,6p' "$0"
      echo "  --deep   also run the deep model checks (minutes to hours, see README)"
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
step "build the model checker" cargo build --release --locked -p zab-model
# The CI configuration: exhaustive, every invariant, every example reached (README has the figures).
step "model check (CI configuration)" \
  ./target/release/zab-model check --servers 3 --txns 1 --crashes 1 --partitions 1 \
  --timeouts 1 --snapshots 1 --epochs 2 --threads 2

if [ "$deep" = 1 ]; then
  step "model check (deep configuration, depth-first)" \
    ./target/release/zab-model check --servers 3 --txns 2 --crashes 1 --partitions 1 \
    --timeouts 1 --snapshots 1 --epochs 2 --threads 2 --dfs
fi
echo
echo "all checks passed"
