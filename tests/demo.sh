#!/usr/bin/env bash
# The main job on the bundled demo platform, offline: render charts/demo-platform with real Helm 4,
# audit the rendered manifests with all three plugins, then install the chart (dry run) with the
# Helm 4 post-renderer plugin, and take the platform through the in-place migration and back on
# the bundled API-server double (a stand-in for a cluster). Installs what it needs (Rust crates, the Python test tools in
# target/venv). Outputs land in target/demo/.
set -uo pipefail
cd "$(dirname "$0")/.."
tests/tools/setup-venv.sh || exit 1
cargo build --quiet --bins -p mesh-migrate -p spire-check -p dbiso -p apiserver-double || exit 1

out=target/demo
mkdir -p "$out/bin" "$out/helm-plugins/mesh-migrate"
# Lay the binaries out as krew does: kubectl finds `kubectl mesh-migrate` as kubectl-mesh_migrate.
for p in mesh-migrate spire-check dbiso; do
  ln -sf "$PWD/target/debug/kubectl-$p" "$out/bin/kubectl-${p//-/_}"
done
cp charts/helm-plugin/mesh-migrate/plugin.yaml "$out/helm-plugins/mesh-migrate/"
export PATH="$PWD/$out/bin:$PWD/target/venv/bin:$PATH"
py=target/venv/bin/python

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Render charts/demo-platform with Helm 4 (release demo, namespace pyairtable)"
$py tests/tools/helm_render.py charts/demo-platform demo pyairtable > "$out/rendered.yaml" || exit 1
echo "$(grep -c '^kind:' "$out/rendered.yaml") objects -> $out/rendered.yaml"

step "kubectl mesh-migrate precheck -f $out/rendered.yaml"
kubectl mesh-migrate precheck -f "$out/rendered.yaml"; echo "(exit $?)"

step "kubectl dbiso audit -f $out/rendered.yaml"
kubectl dbiso audit -f "$out/rendered.yaml"; echo "(exit $?)"

step "kubectl spire-check -f $out/rendered.yaml"
kubectl spire-check -f "$out/rendered.yaml"; echo "(exit $?)"

step "kubectl mesh-migrate post-render (Helm 3 style pipe) --report"
kubectl-mesh_migrate post-render --report < "$out/rendered.yaml" > "$out/post-rendered.yaml" || exit 1
echo "-> $out/post-rendered.yaml"
tests/tools/validate.sh "$out/post-rendered.yaml" | tail -1

step "helm install demo charts/demo-platform --dry-run=client --post-renderer mesh-migrate (Helm 4 plugin)"
$py tests/tools/helm_install.py charts/demo-platform demo pyairtable --post-renderer mesh-migrate \
  --plugins-dir "$out/helm-plugins" > "$out/helm-install.json" || exit 1
$py - "$out/helm-install.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["manifest"]
injected = m.count('sidecar.istio.io/inject: "true"')
policies = m.count("kind: NetworkPolicy")
print(f"release {r['release']['name']} ({r['release']['status']}): {m.count('kind:')} objects, "
      f"{injected} workloads injected, {policies} NetworkPolicies, {len(r['hooks'])} hooks")
PY
echo "full result -> $out/helm-install.json"

step "In place on the API-server double: kubectl apply, precheck, expose, enable, mtls strict, status, rollback"
cluster=$out/cluster
rm -rf "$cluster" && mkdir -p "$cluster"
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n---\n' pyairtable istio-system > "$cluster/base.yaml"
# Two worker nodes, so precheck's capacity check has something to sum.
printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\nstatus:\n  allocatable: {cpu: 3800m, memory: 14Gi, pods: "110"}\n---\n' worker-1 worker-2 >> "$cluster/base.yaml"
target/debug/apiserver-double --crds istio --istiod --namespace pyairtable --dir "$cluster" --load "$cluster/base.yaml" \
  > "$cluster/double.out" 2> "$cluster/double.err" &
double_pid=$!
trap 'kill $double_pid 2>/dev/null' EXIT
for _ in $(seq 50); do [[ -s $cluster/kubeconfig ]] && grep -q '^URL=' "$cluster/double.out" && break; sleep 0.1; done
grep -q '^URL=' "$cluster/double.out" || { echo "the API-server double did not start:"; cat "$cluster/double.err"; exit 1; }
export KUBECONFIG=$PWD/$cluster/kubeconfig
kubectl apply -n pyairtable -f "$out/rendered.yaml" > /dev/null || exit 1
echo "applied $out/rendered.yaml to namespace pyairtable ($(kubectl get deploy,sts -n pyairtable -o name | wc -l) workloads)"
run() { echo "\$ $*"; "$@"; echo "(exit $?)"; }
run kubectl mesh-migrate precheck -n pyairtable
run kubectl mesh-migrate expose -n pyairtable --domain pyairtable.local --ingress-class nginx
run kubectl mesh-migrate enable -n pyairtable --domain pyairtable.local --timeout 2m
run kubectl mesh-migrate mtls strict -n pyairtable
run kubectl mesh-migrate status -n pyairtable
run kubectl mesh-migrate rollback -n pyairtable --timeout 2m
run kubectl mesh-migrate status -n pyairtable
