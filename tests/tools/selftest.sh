#!/usr/bin/env bash
# Self-test of charts/, the Helm plugin, krew-manifests/ and these tools,
# using the real Helm 4 SDK, kubectl 1.37 and kubernetes-validate from
# target/venv and stand-ins for the plugin binaries (no cargo build needed).
# See selftest.py for the list of checks.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup-venv.sh" >/dev/null
venv="${MESHMOVE_TOOLS_VENV:-$(cd "$here/../.." && pwd)/target/venv}"
exec "$venv/bin/python" "$here/selftest.py" "$@"
