#!/usr/bin/env bash
# Install the Istio and Gateway API CRD schemas (npm @kubernetes-models/istio and
# @kubernetes-models/gateway-api, pinned) for validate_istio.mjs.
#
#   tests/tools/setup-node.sh        (setup-venv.sh runs it; so does every validate.sh)
#
# `npm ci` against the committed tests/tools/package.json + package-lock.json (exact versions and
# integrity hashes of every package, dependencies included) into target/node-tools/node_modules
# (override with MESHMOVE_TOOLS_NODE_DIR=/abs/path), with npm's cache under target/ too, so a
# clean clone needs nothing but node and npm on PATH and the package registry. Reinstalled only
# when the lock file, package.json or the Node version changed: a stamp file records a hash of
# the three, so an up-to-date install costs one comparison. Concurrent runs are serialised with
# a lock. Prints a single line on success and fails loudly otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${MESHMOVE_TOOLS_NODE_DIR:-$root/target/node-tools}"
package="$here/package.json"
lockfile="$here/package-lock.json"

die() {
  echo "setup-node: error: $*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || die "'node' not found on PATH (Node.js 20 or newer with npm is needed for the Istio schemas)"
command -v npm >/dev/null 2>&1 || die "'npm' not found on PATH (it comes with Node.js)"
[ -f "$package" ] && [ -f "$lockfile" ] || die "missing $package or $lockfile"

node_version="$(node --version)" || die "'node --version' failed"
want="$(cat "$package" "$lockfile" | cksum | tr ' ' '-')-$node_version"
stamp="$dir/.installed"

up_to_date() {
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir/node_modules/@kubernetes-models/istio" ] \
    && [ -d "$dir/node_modules/@kubernetes-models/gateway-api" ]
}

if up_to_date; then
  echo "setup-node: $dir is up to date"
  exit 0
fi

mkdir -p "$(dirname "$dir")"
lock="$dir.lock"

# Serialise concurrent setups.
# shellcheck source=tests/tools/_lock.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lock.sh"
take_lock "$lock" 8

# Another process may have finished the job while we waited.
if up_to_date; then
  echo "setup-node: $dir is up to date"
  exit 0
fi

# Install next to the old tree and swap it in, so no reader sees a half-installed node_modules.
new="$dir.new.$$"
log="$(mktemp "${TMPDIR:-/tmp}/setup-node.XXXXXX")"
cleanup() { rm -rf "$new" "$log"; release_lock; }
trap cleanup EXIT

rm -rf "$new"
mkdir -p "$new"
cp "$package" "$lockfile" "$new/"
# The packages declare engines node>=22 but run on Node 20 (selftest.sh proves the validator
# rejects what it must); npm only warns about that, and --loglevel=error keeps it quiet.
if ! (cd "$new" && npm_config_cache="$root/target/npm-cache" npm ci --ignore-scripts --no-audit --no-fund \
    --loglevel=error) >"$log" 2>&1; then
  cat "$log" >&2
  die "npm ci in $new failed (tests/tools/package-lock.json)"
fi
if ! (cd "$new" && node --input-type=module -e '
    await import("@kubernetes-models/istio/networking.istio.io/v1/VirtualService");
    await import("@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway");
    await import("yaml");') >"$log" 2>&1; then
  cat "$log" >&2
  die "the installed Istio or Gateway API schemas do not load with node $node_version"
fi
echo "$want" >"$new/.installed"
rm -rf "$dir"
mv "$new" "$dir"
echo "setup-node: installed $(grep -c '"node_modules/' "$lockfile") pinned npm packages into $dir"
