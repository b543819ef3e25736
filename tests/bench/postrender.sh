#!/usr/bin/env bash
# Post-render throughput benchmark (figures in BENCHMARKS.md). One command reruns everything:
#
#   tests/bench/postrender.sh [RELEASES] [RUNS] [KUSTOMIZE_RELEASES] [CRD_MB]
#                                        (defaults: 1000, 5, 50, 100)
#
# 1. builds the release binary `kubectl-mesh-migrate` and the bench target (bench profile);
# 2. makes two inputs with real Helm (tests/bench/gen_input.sh, cached under target/bench/):
#    * the chart-shaped stream: CRD_MB megabytes of releases of the CRD-heavy chart
#      (tests/bench/crd_chart.py: the demo platform plus CustomResourceDefinitions built from
#      Kubernetes' own schema, dashboards and configuration files in ConfigMaps, a
#      PrometheusRule; 1.2 MB a release, 95 % of it read by nothing), and one release of it;
#    * the demo stream: RELEASES releases of charts/demo-platform, where nearly every byte is
#      a workload, Service, Secret or ConfigMap the post-renderer reads;
# 3. measures (hyperfine: RUNS runs after a warm-up, mean and min; /usr/bin/time -v: CPU time
#    and peak RSS of one more run):
#    a. `kubectl-mesh-migrate post-render` end to end, stdin from the file, stdout to a file,
#       default configuration (labels, probes, NetworkPolicies), on each input;
#    b. `cat` on the same inputs (stdin to stdout, a file each side): reading the bytes;
#    c. in process (crates/postrender/benches/postrender.rs): split, scan, parse, the parse-and-emit
#       floor (split + parse every document + re-emit every document with the same YAML code)
#       and `post_render`, on both streams;
#    d. `kubectl kustomize` (real kubectl 1.37 from target/venv) on the first KUSTOMIZE_RELEASES
#       releases of the demo stream with JSON 6902 patches adding the same pod-template labels
#       and probes (tests/bench/kustomization.yaml; BENCHMARKS.md says how the work compares;
#       kustomize's time grows with the square of the resources), and the post-renderer on the
#       same slice;
#    e. plugin start: `kubectl-mesh-migrate --version`, and post-render of one small document;
# and prints Markdown tables and the ratios against the targets.
# BENCH_SKIP_BUILD=1 reuses the binaries already built (target/release); BENCH_REPORT_ONLY=1 prints
# the tables of the last run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
releases=${1:-1000}
runs=${2:-5}
kz_releases=${3:-50}
crd_mb=${4:-100}
kubectl=target/venv/bin/kubectl
[[ -x $kubectl ]] || { echo "postrender.sh: $kubectl missing: run tests/tools/setup-venv.sh" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "postrender.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
command -v hyperfine > /dev/null || { echo "postrender.sh: hyperfine missing (apt-get install hyperfine)" >&2; exit 1; }

bin=target/release/kubectl-mesh-migrate
if [[ ${BENCH_SKIP_BUILD:-0} == 1 || ${BENCH_REPORT_ONLY:-0} == 1 ]]; then
    # Reuse the binaries of an earlier build (e.g. while the tree does not compile).
    bench_bin=$(ls -t target/release/deps/postrender-* 2>/dev/null | grep -v '\.d$' | head -1)
    [[ -x $bin && -x $bench_bin ]] || { echo "postrender.sh: BENCH_SKIP_BUILD=1 but no built binaries" >&2; exit 1; }
else
    echo "== build" >&2
    cargo build --release -q -p mesh-migrate
    bench_bin=$(cargo bench -p meshmove-postrender --bench postrender --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
fi

if [[ ${BENCH_REPORT_ONLY:-0} == 1 ]]; then
    # Print the tables again from the last run's measurements.
    work=target/bench/run
    start_version=$(awk -F, 'NR == 2 { printf "%.2f %.2f", $2 * 1000, $7 * 1000 }' "$work/start-version.csv")
    start_small=$(awk -F, 'NR == 2 { printf "%.2f %.2f", $2 * 1000, $7 * 1000 }' "$work/start-small.csv")
else
echo "== inputs" >&2
crd=$(tests/bench/gen_input.sh --chart bench --mb "$crd_mb")
crd1=$(tests/bench/gen_input.sh --chart bench 1)
demo=$(tests/bench/gen_input.sh --chart demo "$releases")
work=target/bench/run
mkdir -p "$work/kustomize"
# kustomize only reads resources inside (or below) the kustomization's directory.
slice=$work/kustomize/stream.yaml
cp "$(tests/bench/gen_input.sh --chart demo "$kz_releases")" "$slice"
cp tests/bench/kustomization.yaml "$work/kustomize/kustomization.yaml"
small=$work/one-configmap.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n' > "$small"
for f in "$crd" "$crd1" "$demo" "$slice"; do
    echo "  $f: $(awk -v b="$(stat -c %s "$f")" 'BEGIN { printf "%.1f MB", b / 1e6 }'), $(grep -c '^---' "$f" || true) documents" >&2
done

echo "== machine" >&2
echo "$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# timed NAME INPUT CMD: hyperfine (mean and min wall seconds), then one run under time -v (CPU
# seconds, peak RSS KiB); prints "NAME bytes mean min cpu rss". CMD reads stdin, writes stdout.
timed() {
    local name=$1 input=$2 cmd=$3 r mean min cpu rss
    hyperfine --warmup 1 --runs "$runs" --export-csv "$work/$name.csv" "$cmd < $input > $work/$name.out" > /dev/null 2>&1
    read -r mean min < <(awk -F, 'NR == 2 { print $2, $7 }' "$work/$name.csv")
    # shellcheck disable=SC2086
    /usr/bin/time -v -o "$work/$name.time" $cmd < "$input" > "$work/$name.out"
    cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.3f", u + s }' "$work/$name.time")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/$name.time")
    echo "  $name: wall mean $mean s, min $min s, cpu $cpu s, peak RSS $((rss / 1024)) MiB" >&2
    echo "$name $(stat -c %s "$input") $mean $min $cpu $rss"
}
echo "== post-render and cat" >&2
rows=()
rows+=("$(timed crd-post-render "$crd" "$bin post-render")")
rows+=("$(timed crd-cat "$crd" cat)")
rows+=("$(timed crd1-post-render "$crd1" "$bin post-render")")
rows+=("$(timed crd1-cat "$crd1" cat)")
rows+=("$(timed demo-post-render "$demo" "$bin post-render")")
rows+=("$(timed demo-cat "$demo" cat)")
rows+=("$(timed slice-post-render "$slice" "$bin post-render")")
grep -q 'kind: NetworkPolicy' "$work/crd-post-render.out" || { echo "post-render output has no NetworkPolicy" >&2; exit 1; }

echo "== kubectl kustomize, slice ($kz_releases releases)" >&2
t0=$(date +%s.%N)
/usr/bin/time -v -o "$work/kustomize.time" "$kubectl" kustomize "$work/kustomize" > "$work/kustomize.out"
t1=$(date +%s.%N)
kz_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
kz_cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.3f", u + s }' "$work/kustomize.time")
kz_rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/kustomize.time")
[[ $(grep -c 'sidecar.istio.io/inject' "$work/kustomize.out") -ge $kz_releases ]] || { echo "kustomize output lacks the labels" >&2; exit 1; }
rows+=("kustomize $(stat -c %s "$slice") $kz_wall $kz_wall $kz_cpu $kz_rss")

echo "== plugin start" >&2
hyperfine -N --warmup 5 --runs 100 --export-csv "$work/start-version.csv" "$bin --version" > /dev/null 2>&1
hyperfine --warmup 5 --runs 100 --export-csv "$work/start-small.csv" "$bin post-render < $small > /dev/null" > /dev/null 2>&1
start_version=$(awk -F, 'NR == 2 { printf "%.2f %.2f", $2 * 1000, $7 * 1000 }' "$work/start-version.csv")
start_small=$(awk -F, 'NR == 2 { printf "%.2f %.2f", $2 * 1000, $7 * 1000 }' "$work/start-small.csv")

echo "== in process (cargo bench)" >&2
echo "bench binary: $bench_bin" >&2
inproc() {
    local out
    out=$("$bench_bin" "$1" --runs "$runs")
    echo "$out" | grep -v '^RESULT' >&2
    for row in split scan parse floor post_render; do
        echo "$out" | awk -v n="$row" -v s="$2" '$1 == "RESULT" && $2 == n { print $4 }' | sort -n | head -1 | sed "s/^/$2 $row /"
    done
}
crd_inproc=$(inproc "$crd" crd)
demo_inproc=$(inproc "$demo" demo)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

printf '%s\n' "${rows[@]}" > "$work/rows.txt"
printf '%s\n%s\n' "$crd_inproc" "$demo_inproc" > "$work/inproc.txt"
fi
awk -v runs="$runs" -v sv="$start_version" -v ss="$start_small" '
    FNR == NR { name[NR] = $1; bytes[$1] = $2; mean[$1] = $3; min[$1] = $4; cpu[$1] = $5; rss[$1] = $6; n = NR; next }
    { t[$1 " " $2] = $3 }
    END {
        label["crd-post-render"] = "a. `post-render`, CRD-heavy stream"; label["crd-cat"] = "b. `cat`, CRD-heavy stream"
        label["crd1-post-render"] = "a. `post-render`, one CRD-heavy release"; label["crd1-cat"] = "b. `cat`, one CRD-heavy release"
        label["demo-post-render"] = "a. `post-render`, demo stream"; label["demo-cat"] = "b. `cat`, demo stream"
        label["slice-post-render"] = "a. `post-render`, kustomize slice"; label["kustomize"] = "d. `kubectl kustomize`, same slice (one run)"
        printf "\nend to end (hyperfine, %d runs; CPU and RSS from one run of /usr/bin/time -v)\n\n", runs
        printf "| measurement | input | wall mean s | wall min s | MB/s (min) | CPU s | peak RSS | RSS / input |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        for (i = 1; i <= n; i++) {
            k = name[i]; m = bytes[k] / 1e6
            printf "| %s | %.1f MB | %.3f | %.3f | %.1f | %.2f | %.0f MiB | %.2f |\n", label[k], m, mean[k], min[k], m / min[k], cpu[k], rss[k] / 1024, rss[k] * 1024 / bytes[k]
        }
        printf "\nin process (best of %d)\n\n| stream | split MB/s | scan MB/s | parse MB/s | floor MB/s | post_render MB/s | post_render / floor |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n", runs
        for (s = 0; s < 2; s++) {
            st = s == 0 ? "crd" : "demo"; m = bytes[st "-post-render"] / 1e6
            printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f |\n", st, m / t[st " split"], m / t[st " scan"], m / t[st " parse"], m / t[st " floor"], m / t[st " post_render"], t[st " floor"] / t[st " post_render"]
        }
        split(sv, v, " "); split(ss, w, " ")
        printf "\nplugin start (hyperfine, 100 runs): --version mean %s ms (min %s); post-render of one ConfigMap mean %s ms (min %s)\n", v[1], v[2], w[1], w[2]
        crd = bytes["crd-post-render"] / 1e6 / min["crd-post-render"]
        crd_floor = bytes["crd-post-render"] / 1e6 / t["crd floor"]
        crd_cat = bytes["crd-cat"] / 1e6 / min["crd-cat"]
        printf "\ntargets\n"
        printf "post-render, CRD-heavy stream: %.0f MB/s (target >= 100: %s)\n", crd, (crd >= 100 ? "met" : "MISSED")
        printf "  vs the in-process floor (%.0f MB/s): %.2f; vs cat (%.0f MB/s): %.3f\n", crd_floor, crd / crd_floor, crd_cat, crd / crd_cat
        d = bytes["demo-post-render"] / 1e6 / min["demo-post-render"]
        d_floor = bytes["demo-post-render"] / 1e6 / t["demo floor"]
        d_cat = bytes["demo-cat"] / 1e6 / min["demo-cat"]
        printf "post-render, demo stream: %.1f MB/s; vs floor (%.0f MB/s): %.2f; vs cat (%.0f MB/s): %.3f\n", d, d_floor, d / d_floor, d_cat, d / d_cat
        printf "post-render vs kustomize on the same slice: %.0fx by wall time, %.0fx by CPU time\n", mean["kustomize"] / min["slice-post-render"], cpu["kustomize"] / cpu["slice-post-render"]
        printf "plugin start: %s ms (target <= 5: %s)\n", v[1], (v[1] <= 5 ? "met" : "MISSED")
    }' "$work/rows.txt" "$work/inproc.txt"
