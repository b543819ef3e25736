#!/usr/bin/env bash
# Time and memory of `kubectl-mesh-migrate post-render` against the size of its input (table in
# BENCHMARKS.md): is it linear from 1 MB to 200 MB, and does peak RSS stay within 3x the input?
#
#   tests/bench/scaling.sh [SIZES_MB] [RUNS]     (defaults: "1 2 5 10 20 50 100 200", 3)
#   CHARTS="demo bench" BENCH_SKIP_BUILD=1 tests/bench/scaling.sh
#
# For each chart (tests/bench/gen_input.sh: `demo` = charts/demo-platform, where the post-renderer
# reads nearly every byte; `bench` = the CRD-heavy chart, shaped like real charts) and each size,
# a stream of as many releases as make that many megabytes (10^6 bytes) is post-rendered with
# the default configuration, stdin from the file, stdout to a file:
#   * wall time: hyperfine, RUNS runs after a warm-up (mean and min), the shell's start-up
#     subtracted;
#   * CPU time (user + sys) and peak RSS: /usr/bin/time -v, one run;
# and prints a Markdown table with MB/s, microseconds per KB (flat when linear) and RSS / input.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=${1:-"1 2 5 10 20 50 100 200"}
runs=${2:-3}
charts=${CHARTS:-"demo bench"}
command -v hyperfine > /dev/null || { echo "scaling.sh: hyperfine missing (apt-get install hyperfine)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "scaling.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
bin=target/release/kubectl-mesh-migrate
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "== build" >&2
    cargo build --release -q -p mesh-migrate
fi
[[ -x $bin ]] || { echo "scaling.sh: $bin missing" >&2; exit 1; }
work=target/bench/run
mkdir -p "$work"

echo "$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
printf '| chart | input | releases | documents | wall mean s | wall min s | MB/s (min) | µs per KB (min) | CPU s | peak RSS | RSS / input |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for chart in $charts; do
    for mb in $sizes; do
        stream=$(tests/bench/gen_input.sh --chart "$chart" --mb "$mb")
        bytes=$(stat -c %s "$stream")
        releases=$(basename "$stream" .yaml | sed 's/.*-//')
        docs=$(grep -c '^---' "$stream" || true)
        # hyperfine runs the command through a shell and subtracts the shell's own start-up.
        hyperfine --warmup 1 --runs "$runs" --export-csv "$work/scaling.csv" \
            "$bin post-render < $stream > $work/scaling.out" > /dev/null 2>&1
        read -r mean min < <(awk -F, 'NR == 2 { print $2, $7 }' "$work/scaling.csv")
        /usr/bin/time -v -o "$work/scaling.time" "$bin" post-render < "$stream" > "$work/scaling.out"
        cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$work/scaling.time")
        rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/scaling.time")
        awk -v c="$chart" -v b="$bytes" -v r="$releases" -v d="$docs" -v mean="$mean" -v min="$min" -v cpu="$cpu" -v rss="$rss" 'BEGIN {
            printf "| %s | %.1f MB | %d | %d | %.3f | %.3f | %.1f | %.1f | %.2f | %.0f MiB | %.2f |\n",
                c, b / 1e6, r, d, mean, min, b / 1e6 / min, min * 1e6 / (b / 1e3), cpu, rss / 1024, rss * 1024 / b
        }'
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
