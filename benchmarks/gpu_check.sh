#!/usr/bin/env bash
# GPU check for a lent GPU machine: one command, under 8 minutes on one GPU.
#
#   1. the tiny end-to-end workflow on the GPU: digits (tests/configs/tiny.yaml) and the
#      generated CIFAR10-format archive with a BN CNN, an option-A ResNet and a DenseNet
#      (tests/configs/cifar_tiny.yaml), device=cuda, every heavy job on the GPU;
#   2. benchmarks/gpu_check.py: CPU vs GPU agreement of a short AutoNEB run (stated tolerances),
#      one ResNet-20 NEB step at batch 512 and the paper's 16,000 steps extrapolated;
#   3. benchmarks/gpu_benchmark.py: ResNet-20 NEB step loop vs batched at N = 8, 16, 32 with and
#      without bf16 / channels_last, training throughput (with what time is left).
#
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]     (needs the venv: make venv)
# Every part has its own time limit; the summary at the end says which parts passed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/gpu_check}
PY=${PY:-.venv/bin/python}
SNAKEMAKE=${SNAKEMAKE:-.venv/bin/snakemake}
CORES=${CORES:-$(nproc)}
rm -rf "$OUT" && mkdir -p "$OUT"
start=$(date +%s)
status=()
part() {  # part NAME LIMIT_S COMMAND...: run with a time limit, log to OUT/NAME.log
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  status+=("$name: rc=$rc, $(( $(date +%s) - t0 )) s")
  echo "== $name: rc=$rc ($(( $(date +%s) - t0 )) s)"; tail -n 40 "$OUT/$name.log"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

# 1. the workflows on the GPU (threads 2 per job so that several jobs share the GPU)
part digits-workflow 150 "$SNAKEMAKE" --cores "$CORES" --configfile tests/configs/tiny.yaml \
  --config results_dir="$OUT/digits/results" data_dir="$OUT/digits/data" device=cuda \
  gpu_jobs=true
$PY - "$OUT/cifar" <<'EOF' > "$OUT/cifar-config.log" 2>&1
import sys, yaml
from pathlib import Path
sys.path.insert(0, "tests")
from cifar_archive import write_cifar_archive
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
_, checksums, _ = write_cifar_archive(out / "data", "cifar10", per_file=24, classes=4)
config = yaml.safe_load(Path("tests/configs/cifar_tiny.yaml").read_text())
config |= {"results_dir": str(out / "results"), "data_dir": str(out / "data"), "device": "cuda",
           "dataset_checksums": {"cifar10": checksums}}
(out / "cifar.yaml").write_text(yaml.safe_dump(config))
EOF
part cifar-workflow 200 "$SNAKEMAKE" --cores "$CORES" --configfile "$OUT/cifar/cifar.yaml"
for f in "$OUT"/digits/results/table_b1.md "$OUT"/cifar/results/table_b1.md; do
  [ -f "$f" ] && { echo "-- $f"; cat "$f"; }
done
grep -h "device:" "$OUT"/cifar/results/logs/cifar10/*/train/*.log 2>/dev/null | sort | uniq -c | head -3

# 2. agreement and the paper-size cycle
part engine 120 "$PY" benchmarks/gpu_check.py --data-dir "$OUT/digits/data"

# 3. the NEB step and training benchmark with the time that is left (of 470 s)
left=$(( 470 - ($(date +%s) - start) ))
if [ "$left" -gt 60 ]; then
  part benchmark $(( left + 30 )) "$PY" benchmarks/gpu_benchmark.py --budget $(( left - 30 )) \
    --repeats 5 --train-steps 50
else
  status+=("benchmark: skipped, ${left} s left")
fi
echo; echo "== summary ($(( $(date +%s) - start )) s in all)"; printf '%s\n' "${status[@]}"
