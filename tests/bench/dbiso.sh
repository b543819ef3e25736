#!/usr/bin/env bash
# `kubectl dbiso audit` and `reach` against the size of the cluster (table in BENCHMARKS.md): are
# they near-linear in workloads, and does audit on 10,000 workloads, 100,000 pods and 10,000
# NetworkPolicies stay within 3 s and 1 GiB?
#
#   tests/bench/dbiso.sh [WORKLOADS] [RUNS]      (defaults: "1000 2500 5000 10000", 3)
#   BENCH_SKIP_BUILD=1 tests/bench/dbiso.sh      reuse target/release/kubectl-dbiso
#   DBISO_BIN=path tests/bench/dbiso.sh          measure another build (e.g. an older commit's)
#
# The cluster states come from the generator of `cargo bench -p dbiso --bench audit` (`--write
# DIR`): WORKLOADS/20 namespaces of 20 workloads (Deployments with their ReplicaSets and
# StatefulSets; 8 in 20 run postgres, mysql or redis), 10 running pods each with pod IPs, a Service
# each, 20 NetworkPolicies per namespace (default deny, database isolation by named port,
# namespace selectors by name, by team label and with matchExpressions, ipBlocks with except,
# egress to external ranges, port ranges, UDP), Secrets with connection strings. Written as
# `kubectl get KIND -A -o json` writes them, one List file per kind, under target/bench/dbiso/
# (cached: delete the directory to regenerate). For each size:
#   * `audit -f DIR -A -o json` and `reach -f DIR -A -o json` (all pairs; stdout to a file) and
#     `reach -f DIR -A --focus DATABASE -o json` (the pairs of one database): wall time by
#     hyperfine, RUNS runs after a warm-up (min); CPU time and peak RSS by /usr/bin/time -v, one run;
# and prints a Markdown table with microseconds per workload (flat when linear).
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=${1:-"1000 2500 5000 10000"}
runs=${2:-3}
command -v hyperfine > /dev/null || { echo "dbiso.sh: hyperfine missing (apt-get install hyperfine)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "dbiso.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
bin=${DBISO_BIN:-target/release/kubectl-dbiso}
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "== build" >&2
    cargo build --release -q -p dbiso
fi
gen=$(ls -t target/release/deps/audit-* 2> /dev/null | grep -v '\.d$' | head -1 || true)
if [[ ${BENCH_SKIP_BUILD:-0} != 1 || -z $gen ]]; then
    gen=$(cargo bench -q -p dbiso --bench audit --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
fi
[[ -x $bin ]] || { echo "dbiso.sh: $bin missing" >&2; exit 1; }
[[ -x $gen ]] || { echo "dbiso.sh: the generator (bench target audit) is missing" >&2; exit 1; }
work=target/bench/run
mkdir -p "$work"

echo "$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
printf '| workloads | pods | policies | input | command | wall min s | CPU s | peak RSS | µs per workload | stdout KB |\n'
printf '| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n'
for n in $sizes; do
    dir=target/bench/dbiso/cluster-$n
    if [[ ! -s $dir/pods.json ]]; then
        rm -rf "$dir.tmp"
        "$gen" --workloads "$n" --write "$dir.tmp" >&2
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    bytes=$(cat "$dir"/*.json | wc -c)
    pods=$(grep -c '"kind": "Pod"' "$dir/pods.json")
    policies=$(grep -c '"kind": "NetworkPolicy"' "$dir/networkpolicies.json")
    # A database of the last namespace: its focus view is the same size at every scale.
    last=$(printf 'team-%03d' $((n / 20 - 1)))
    for cmd in audit reach focus; do
        case $cmd in
            audit) args="audit -f $dir -A -o json" ;;
            reach) args="reach -f $dir -A -o json" ;;
            focus) args="reach -f $dir -A --focus statefulset/$last/db-2 -o json" ;;
        esac
        # audit exits 1 when it has findings: hyperfine must not treat that as a failure.
        hyperfine --warmup 1 --runs "$runs" -i --export-csv "$work/dbiso.csv" "$bin $args > $work/dbiso.out" > /dev/null 2>&1
        min=$(awk -F, 'NR == 2 { print $7 }' "$work/dbiso.csv")
        # shellcheck disable=SC2086
        /usr/bin/time -v -o "$work/dbiso.time" "$bin" $args > "$work/dbiso.out" || [[ $? == 1 ]]
        grep -q 'Exit status: [01]$' "$work/dbiso.time" || { echo "dbiso.sh: $bin $args failed" >&2; cat "$work/dbiso.time" >&2; exit 1; }
        cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$work/dbiso.time")
        rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/dbiso.time")
        out=$(stat -c %s "$work/dbiso.out")
        label=$cmd
        [[ $cmd == focus ]] && label="reach --focus db"
        awk -v n="$n" -v p="$pods" -v np="$policies" -v b="$bytes" -v c="$label" -v min="$min" -v cpu="$cpu" -v rss="$rss" -v out="$out" 'BEGIN {
            printf "| %d | %d | %d | %.0f MB | `%s` | %.3f | %.2f | %.0f MiB | %.1f | %.0f |\n",
                n, p, np, b / 1e6, c, min, cpu, rss / 1024, min * 1e6 / n, out / 1e3
        }'
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
