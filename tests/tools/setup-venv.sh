#!/usr/bin/env bash
# Create or refresh the Python virtual environment for the test tools.
#
#   tests/tools/setup-venv.sh
#
# The venv lives in target/venv at the repository root (override with
# MESHMOVE_TOOLS_VENV=/abs/path). It is rebuilt only when requirements.txt or
# the Python interpreter changed: a stamp file inside the venv records a hash
# of both, so an up-to-date venv costs one file comparison. Concurrent runs
# (parallel tests) are serialised with a lock. Needs only python3 with the
# venv module and network access to the package index; prints a single line
# on success and fails loudly otherwise.
#
# It first runs setup-node.sh, which installs Istio's CRD schemas (npm
# @kubernetes-models/istio, pinned by tests/tools/package-lock.json) into
# target/node-tools the same way (needs node and npm; one more line).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
requirements="$here/requirements.txt"
venv="${MESHMOVE_TOOLS_VENV:-$root/target/venv}"
python="${PYTHON:-python3}"

die() {
  echo "setup-venv: error: $*" >&2
  exit 1
}

command -v "$python" >/dev/null 2>&1 || die "'$python' not found on PATH (python3 3.9 or newer is required)"
[ -f "$requirements" ] || die "missing $requirements"
"$here/setup-node.sh"

hash_file() {
  "$python" - "$@" <<'PY'
import hashlib, sys
h = hashlib.sha256()
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        h.update(f.read())
import platform
h.update(("\0" + sys.version + "\0" + platform.machine()).encode())
print(h.hexdigest())
PY
}

want="$(hash_file "$requirements")" || die "cannot hash $requirements with $python"
stamp="$venv/.requirements.sha256"

up_to_date() {
  [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

if up_to_date; then
  echo "setup-venv: $venv is up to date"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
lock="$venv.lock"

# Serialise concurrent setups.
# shellcheck source=tests/tools/_lock.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lock.sh"
take_lock "$lock" 9

# Another process may have finished the job while we waited.
if up_to_date; then
  echo "setup-venv: $venv is up to date"
  exit 0
fi

log="$(mktemp "${TMPDIR:-/tmp}/setup-venv.XXXXXX")"
cleanup() { rm -f "$log"; release_lock; }
trap cleanup EXIT

rm -rf "$venv"
if ! "$python" -m venv "$venv" >"$log" 2>&1; then
  cat "$log" >&2
  die "'$python -m venv' failed (on Debian/Ubuntu install the python3-venv package)"
fi
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
    -r "$requirements" >"$log" 2>&1; then
  cat "$log" >&2
  rm -rf "$venv"
  die "pip install -r $requirements failed"
fi
if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate, yaml' >"$log" 2>&1; then
  cat "$log" >&2
  rm -rf "$venv"
  die "the installed tools do not import"
fi
echo "$want" >"$stamp"
echo "setup-venv: installed $(grep -c '^[A-Za-z]' "$requirements") pinned packages into $venv"
