#!/usr/bin/env bash
# Generate a post-render benchmark input: RELEASES releases of a chart rendered by real Helm 4
# (tests/tools/helm_render.py), each with its own release name, namespace and name prefix (so
# object identities do not collide), concatenated into one stream.
#
# usage: tests/bench/gen_input.sh [--chart demo|unlabelled|bench] [RELEASES | --mb MB]
#
#   --chart demo    charts/demo-platform (43 KB a release: workloads, Services, Secrets, ...;
#                   nearly every byte is read by the post-renderer). The default.
#   --chart unlabelled  charts/demo-platform with the release label (app.kubernetes.io/instance)
#                   left out of the metadata of everything but the workloads, as charts that
#                   label only their workloads render: Services, Secrets, the ConfigMap, the
#                   Ingress and the PodDisruptionBudget of every release belong to no release by
#                   their labels (selectors and pod labels keep it). Helm's render with that one
#                   line removed per object (`unlabel` below); the check against Helm applies
#                   the same removal.
#   --chart bench   the CRD-heavy chart tests/bench/crd_chart.py writes: the demo platform plus
#                   six more services, three CustomResourceDefinitions built from Kubernetes' own
#                   API schema, Grafana dashboards and a proxy configuration in ConfigMaps, and a
#                   PrometheusRule (1.2 MB a release, about 95 % of it bytes the post-renderer
#                   neither changes nor reads, like argo-cd's or kube-prometheus-stack's renders).
#   RELEASES        number of releases (default 400);
#   --mb MB         as many releases as make at least MB megabytes (10^6 bytes).
#
# Prints the path of the stream; cached under target/bench/ (delete it to regenerate).
#
# Helm renders one release with placeholder names; release i is that render with the placeholder
# replaced by i. The chart's output depends on the names only through the names themselves
# (checked: the first and the last release are also rendered by Helm, and must be byte-identical
# to the substituted ones), so the stream is what rendering every release would give, in
# seconds instead of a Helm process per release.
set -euo pipefail
cd "$(dirname "$0")/../.."
chart=demo
releases=400
mb=
while [[ $# -gt 0 ]]; do
    case $1 in
        --chart) chart=$2; shift 2 ;;
        --mb) mb=$2; shift 2 ;;
        *) releases=$1; shift ;;
    esac
done
py=target/venv/bin/python
[[ -x $py ]] || { echo "gen_input.sh: $py missing: run tests/tools/setup-venv.sh" >&2; exit 1; }
# unlabel: the stream without the release label in the metadata of objects other than workloads.
unlabel() { cat; }
case $chart in
    demo) chart_dir=charts/demo-platform; prefix=stream ;;
    unlabelled)
        chart_dir=charts/demo-platform
        prefix=stream-unlabelled
        unlabel() {
            awk '
                /^---/ { kind = ""; top = ""; second = ""; print; next }
                /^kind: / { kind = $2 }
                /^[^ #]/ { split($0, a, ":"); top = a[1]; second = "" }
                /^  [^ #-]/ { s = $0; sub(/^  /, "", s); split(s, a, ":"); second = a[1] }
                top == "metadata" && second == "labels" && /^    app\.kubernetes\.io\/instance: / &&
                    kind !~ /^(Deployment|StatefulSet|DaemonSet|Job|CronJob)$/ { next }
                { print }'
        }
        ;;
    bench)
        chart_dir=target/bench/charts/bench-platform
        prefix=stream-bench
        if [[ ! -s $chart_dir/Chart.yaml || tests/bench/crd_chart.py -nt $chart_dir/Chart.yaml ]]; then
            "$py" tests/bench/crd_chart.py "$chart_dir"
        fi
        ;;
    *) echo "gen_input.sh: --chart demo|unlabelled|bench" >&2; exit 2 ;;
esac
dir=target/bench/$chart
mkdir -p "$dir"

# render I: Helm's render of release I (release relI, namespace teamI, name prefix rI-).
render() {
    "$py" tests/tools/helm_render.py "$chart_dir" "rel$1" "team$1" --values "{\"namePrefix\":\"r$1-\"}" | unlabel
}
template=$dir/template.yaml
if [[ ! -s $template || $chart_dir/Chart.yaml -nt $template ]]; then
    render qzx > "$template.tmp"
    mv "$template.tmp" "$template"
fi
release_bytes=$(sed 's/qzx/1/g' "$template" | wc -c)
if [[ -n $mb ]]; then
    # Releases with more digits are a few bytes longer: 1 is the smallest.
    releases=$(awk -v mb="$mb" -v b="$release_bytes" 'BEGIN { n = int(mb * 1e6 / b); if (n * b < mb * 1e6) n++; print (n < 1 ? 1 : n) }')
fi
out=target/bench/$prefix-$releases.yaml
if [[ ! -s $out ]]; then
    for i in 1 "$releases"; do
        if ! cmp -s <(render "$i") <(sed "s/qzx/$i/g" "$template"); then
            echo "gen_input.sh: Helm's render of release $i differs from the substituted one: the chart's output depends on its names beyond the names" >&2
            exit 1
        fi
    done
    awk -v n="$releases" '{ lines[NR] = $0 } END { for (i = 1; i <= n; i++) for (l = 1; l <= NR; l++) { s = lines[l]; gsub(/qzx/, i, s); print s } }' "$template" > "$out.tmp"
    mv "$out.tmp" "$out"
fi
echo "$out"
