#!/usr/bin/env bash
# End-to-end cost of `make demo` (the embedded digits config): wall time and peak memory.
#
# Runs exactly what `make demo` runs (snakemake --cores $CORES --rerun-incomplete) under
# /usr/bin/time -v, but into a scratch results/data directory so a real results/ is untouched.
# Takes about 10 minutes on 2 cores.  Usage:  bash benchmarks/bench_demo.sh [OUT_DIR]
# Peak memory: "Maximum resident set size" of /usr/bin/time -v is the largest single process
# of the tree (snakemake or one job), which is what limits a 2-core/3 GB machine when jobs
# run one per core; the script also samples the summed RSS of the whole process tree.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/bench_demo}
CORES=${CORES:-2}
SNAKEMAKE=${SNAKEMAKE:-.venv/bin/snakemake}
rm -rf "$OUT" && mkdir -p "$OUT"
# sample the summed RSS (MiB) of the snakemake process tree every second
sample_tree() {
  local root=$1 peak=0
  while kill -0 "$root" 2>/dev/null; do
    local total
    # the process and all its descendants
    local all="$root" frontier="$root"
    while [ -n "$frontier" ]; do
      frontier=$(for p in $frontier; do ps -o pid= --ppid "$p" 2>/dev/null; done | tr -s ' \n' ' ')
      all="$all $frontier"
    done
    total=$(for p in $all; do awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null; done | awk '{s+=$1} END {print int(s/1024)}')
    [ "${total:-0}" -gt "$peak" ] && peak=$total && echo "$peak" > "$OUT/peak_tree_rss_mib"
    sleep 1
  done
}
start=$(date +%s.%N)
/usr/bin/time -v -o "$OUT/time.txt" "$SNAKEMAKE" --cores "$CORES" --rerun-incomplete \
  --workflow-profile none \
  --config results_dir="$OUT/results" data_dir="$OUT/data" \
  > "$OUT/snakemake.log" 2>&1 &
pid=$!
sample_tree "$pid" &
sampler=$!
rc=0; wait "$pid" || rc=$?
wait "$sampler" 2>/dev/null || true
end=$(date +%s.%N)
wall=$(echo "$end - $start" | bc)
maxrss_kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$OUT/time.txt")
echo "make demo (embedded config, --cores $CORES): rc=$rc"
printf "wall time: %.1f s (%.1f min)\n" "$wall" "$(echo "$wall / 60" | bc -l)"
echo "peak RSS of one process (time -v): $((maxrss_kib / 1024)) MiB"
echo "peak summed RSS of the process tree (1 s samples): $(cat "$OUT/peak_tree_rss_mib" 2>/dev/null || echo '?') MiB"
# load-independent figure: CPU seconds of all jobs (Snakemake benchmark files, column cpu_time)
find "$OUT/results/benchmarks" -name '*.tsv' -exec tail -n1 {} \; 2>/dev/null \
  | awk -F'\t' '{cpu+=$10; n+=1; if ($3>rss) rss=$3} END {printf "jobs with benchmark files: %d, their CPU time: %.0f s, largest job RSS: %.0f MiB\n", n, cpu, rss}'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
ls "$OUT/results/table_b1.csv" >/dev/null 2>&1 && echo "table: $OUT/results/table_b1.csv"
exit $rc
