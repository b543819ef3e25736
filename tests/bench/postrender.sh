#!/usr/bin/env bash
# Post-render throughput benchmark (figures in BENCHMARKS.md). One command reruns everything:
#
#   tests/bench/postrender.sh [RELEASES] [RUNS] [KUSTOMIZE_RELEASES]     (defaults: 1000, 3, 50)
#
# 1. builds the release binary `kubectl-mesh-migrate` and the bench target (bench profile);
# 2. renders RELEASES releases of charts/demo-platform with real Helm into one stream
#    (tests/bench/gen_input.sh; cached under target/bench/);
# 3. measures, each RUNS times (median reported):
#    a. `kubectl-mesh-migrate post-render` end to end, stdin -> stdout, default configuration
#       (labels, probes, NetworkPolicies), on the whole stream;
#    b. `kubectl kustomize` (real kubectl 1.37 from target/venv, kustomize v5) with a stream as
#       its resource and JSON 6902 patches adding the same pod-template labels and probes to
#       the same workloads (tests/bench/kustomization.yaml; BENCHMARKS.md says how the work
#       compares). kustomize's time grows with the square of the number of resources (about
#       20 s for 50 releases, 10 minutes for 200), so it runs on the first KUSTOMIZE_RELEASES
#       releases of the same input, and the post-renderer is measured on that same slice too;
#    c. the parse-and-emit floor: split + parse + re-emit every document with the same YAML code
#       in-process (the bench target crates/core/benches/postrender.rs, row `floor`), and the
#       in-process `post_render` call, on the whole stream;
#    with CPU time (user + sys) and peak RSS (`/usr/bin/time -v`) next to the input size.
# Prints a Markdown table and the ratios against the targets (>= 10x kustomize, >= 0.5x floor).
# BENCH_SKIP_BUILD=1 reuses the binaries already built (target/release).
set -euo pipefail
cd "$(dirname "$0")/../.."
releases=${1:-1000}
runs=${2:-3}
kz_releases=${3:-50}
kubectl=target/venv/bin/kubectl
[[ -x $kubectl ]] || { echo "postrender.sh: $kubectl missing: run tests/tools/setup-venv.sh" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "postrender.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

bin=target/release/kubectl-mesh-migrate
if [[ ${BENCH_SKIP_BUILD:-0} == 1 ]]; then
    # Reuse the binaries of an earlier build (e.g. while the tree does not compile).
    bench_bin=$(ls -t target/release/deps/postrender-* 2>/dev/null | grep -v '\.d$' | head -1)
    [[ -x $bin && -x $bench_bin ]] || { echo "postrender.sh: BENCH_SKIP_BUILD=1 but no built binaries" >&2; exit 1; }
else
    echo "== build" >&2
    cargo build --release -q -p mesh-migrate
    bench_bin=$(cargo bench -p meshmove-core --bench postrender --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
fi

echo "== input" >&2
stream=$(tests/bench/gen_input.sh "$releases")
bytes=$(stat -c %s "$stream")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
docs=$(grep -c '^---' "$stream" || true)
echo "input: $stream, $mb MB, $docs documents" >&2

work=target/bench/run
mkdir -p "$work/kustomize"
# kustomize only reads resources inside (or below) the kustomization's directory.
slice=$work/kustomize/stream.yaml
: > "$slice"
for ((i = 1; i <= kz_releases; i++)); do cat "target/bench/releases/r$i.yaml" >> "$slice"; done
slice_bytes=$(stat -c %s "$slice")
cp tests/bench/kustomization.yaml "$work/kustomize/kustomization.yaml"

# measure NAME INPUT CMD...: runs CMD RUNS times with stdin from INPUT ("-" for none), stdout to
# $work/NAME.out; prints "NAME median_wall_s median_cpu_s max_rss_kb".
measure() {
    local name=$1 input=$2; shift 2
    local walls=() cpus=() rss=0 t0 t1 r cpu
    for ((i = 1; i <= runs; i++)); do
        t0=$(date +%s.%N)
        if [[ $input == - ]]; then
            /usr/bin/time -v -o "$work/$name.time" "$@" < /dev/null > "$work/$name.out"
        else
            /usr/bin/time -v -o "$work/$name.time" "$@" < "$input" > "$work/$name.out"
        fi
        t1=$(date +%s.%N)
        walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
        cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$work/$name.time")
        cpus+=("$cpu")
        r=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/$name.time")
        ((r > rss)) && rss=$r
        echo "  $name run $i: wall ${walls[-1]} s, cpu $cpu s, peak RSS $((r / 1024)) MiB" >&2
    done
    echo "$name $(median "${walls[@]}") $(median "${cpus[@]}") $rss"
}
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "== machine" >&2
echo "$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "== post-render binary, whole stream" >&2
pr=$(measure post-render "$stream" "$bin" post-render)
echo "== post-render binary, kustomize slice ($kz_releases releases)" >&2
prs=$(measure post-render-slice "$slice" "$bin" post-render)
echo "== kubectl kustomize, slice ($kz_releases releases)" >&2
kz=$(measure kustomize - "$kubectl" kustomize "$work/kustomize")
echo "== in-process floor (cargo bench)" >&2
echo "bench binary: $bench_bin" >&2
bench_out=$("$bench_bin" "$stream" --runs "$runs")
echo "$bench_out" | grep -v '^RESULT' >&2
median_of() { median $(echo "$bench_out" | awk -v n="$1" '$1 == "RESULT" && $2 == n { print $4 }'); }
floor_s=$(median_of floor)
inproc_s=$(median_of post_render)
parse_s=$(median_of parse)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

read -r _ pr_s pr_cpu pr_rss <<< "$pr"
read -r _ prs_s prs_cpu prs_rss <<< "$prs"
read -r _ kz_s kz_cpu kz_rss <<< "$kz"
# Sanity: the outputs hold what was asked for.
grep -q 'kind: NetworkPolicy' "$work/post-render.out" || { echo "post-render output has no NetworkPolicy" >&2; exit 1; }
[[ $(grep -c 'sidecar.istio.io/inject' "$work/kustomize.out") -ge $kz_releases ]] || { echo "kustomize output lacks the labels" >&2; exit 1; }

awk -v bytes="$bytes" -v sbytes="$slice_bytes" -v pr="$pr_s" -v prc="$pr_cpu" -v prr="$pr_rss" \
    -v prs="$prs_s" -v prsc="$prs_cpu" -v prsr="$prs_rss" -v kz="$kz_s" -v kzc="$kz_cpu" -v kzr="$kz_rss" \
    -v fl="$floor_s" -v ip="$inproc_s" -v pa="$parse_s" -v releases="$releases" -v kzrel="$kz_releases" -v runs="$runs" 'BEGIN {
    m = bytes / 1e6; sm = sbytes / 1e6
    printf "\ninput: %d releases of charts/demo-platform, %.1f MB (kustomize slice: %d releases, %.1f MB); median of %d runs\n\n", releases, m, kzrel, sm, runs
    printf "| measurement | input | wall s | MB/s (wall) | CPU s | MB/s (CPU) | peak RSS |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    printf "| a. `kubectl-mesh-migrate post-render` | %.1f MB | %.2f | %.1f | %.2f | %.1f | %d MiB |\n", m, pr, m / pr, prc, m / prc, prr / 1024
    printf "| a. `kubectl-mesh-migrate post-render` | %.1f MB | %.2f | %.1f | %.2f | %.1f | %d MiB |\n", sm, prs, sm / prs, prsc, sm / prsc, prsr / 1024
    printf "| b. `kubectl kustomize` (label and probe patches) | %.1f MB | %.2f | %.3f | %.2f | %.3f | %d MiB |\n", sm, kz, sm / kz, kzc, sm / kzc, kzr / 1024
    printf "| c. parse-and-emit floor (in process) | %.1f MB | %.2f | %.1f | - | - | - |\n", m, fl, m / fl
    printf "| in-process `post_render` | %.1f MB | %.2f | %.1f | - | - | - |\n", m, ip, m / ip
    printf "| in-process parse only | %.1f MB | %.2f | %.1f | - | - | - |\n", m, pa, m / pa
    printf "\npost-render vs kustomize on the same %.1f MB: %.0fx by wall time, %.0fx by CPU time (target >= 10x: %s)\n", sm, kz / prs, kzc / prsc, (kz / prs >= 10 ? "met" : "MISSED")
    printf "post-render binary (wall, whole stream) vs floor: %.2f of the floor throughput (target >= 0.5: %s)\n", fl / pr, (fl / pr >= 0.5 ? "met" : "MISSED")
    printf "in-process post_render vs floor: %.2f\n", fl / ip
    printf "peak RSS / input size: post-render %.1fx (%.1f MB input), kustomize %.1fx (%.1f MB input)\n", prr * 1024 / bytes, m, kzr * 1024 / sbytes, sm
}'
