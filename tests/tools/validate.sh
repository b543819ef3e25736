#!/usr/bin/env bash
# Strict schema validation of Kubernetes manifests (Kubernetes 1.37).
#
#   tests/tools/validate.sh FILE...      ("-" reads stdin)
#
# Runs kubernetes-validate's validator in strict mode (unknown fields are
# errors) on every document. Custom resources (API groups that kube-apiserver
# does not serve itself, e.g. Istio, SPIRE, CloudNativePG) have no upstream
# schema: they are reported as SKIP and do not fail. A built-in group without
# a schema (misspelt kind, removed API version) does fail. Exit 1 on any
# failure. Sets up target/venv first if needed (tests/tools/setup-venv.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$#" -eq 0 ]; then
  echo "usage: $0 FILE..." >&2
  exit 2
fi
"$here/setup-venv.sh" >/dev/null
venv="${MESHMOVE_TOOLS_VENV:-$(cd "$here/../.." && pwd)/target/venv}"
exec "$venv/bin/python" "$here/validate_manifests.py" -k 1.37.0 "$@"
