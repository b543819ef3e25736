#!/usr/bin/env bash
# Generate the post-render benchmark input: RELEASES renders of charts/demo-platform by real
# Helm 4 (tests/tools/helm_render.py), each with its own release name, namespace and name prefix
# (so object identities do not collide), concatenated into one stream.
#
# usage: tests/bench/gen_input.sh [RELEASES]     (default 400)
# prints the path of the stream; cached under target/bench/ (delete it to regenerate).
set -euo pipefail
cd "$(dirname "$0")/../.."
releases=${1:-400}
py=target/venv/bin/python
[[ -x $py ]] || { echo "gen_input.sh: $py missing: run tests/tools/setup-venv.sh" >&2; exit 1; }
dir=target/bench/releases
out=target/bench/stream-$releases.yaml
mkdir -p "$dir"
if [[ ! -s $out ]]; then
    # Render missing releases two at a time (each render is its own Helm process).
    seq 1 "$releases" | while read -r i; do
        f=$dir/r$i.yaml
        [[ -s $f ]] || echo "$i"
    done | xargs -r -P 2 -I{} sh -c \
        "$py tests/tools/helm_render.py charts/demo-platform rel{} team{} --values '{\"namePrefix\":\"r{}-\"}' > $dir/r{}.yaml.tmp && mv $dir/r{}.yaml.tmp $dir/r{}.yaml"
    tmp=$out.tmp
    : > "$tmp"
    for i in $(seq 1 "$releases"); do cat "$dir/r$i.yaml" >> "$tmp"; done
    mv "$tmp" "$out"
fi
echo "$out"
