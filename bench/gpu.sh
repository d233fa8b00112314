#!/usr/bin/env bash
# The GPU check, on one GPU node, offline, in under 8 minutes (issues 15 and 16):
#   1. pipeline doctor --require-gpu   torch's CUDA build, driver, GPU arch, bf16, a CUDA matmul
#   2. pytest -m gpu tests             fp16 AMP + GradScaler, CUDA RNG in checkpoints, exact resume on CUDA,
#                                      the NVML sampler (non-zero utilisation), metrics.json "gpu"
#   3. python -m bench.gpu             ours vs HF Trainer, MiniLM and bert-base-sized, bf16 and fp16:
#                                      samples/s, peak memory, GPU utilisation (NVML), MFU; a table for
#                                      docs/performance.md, and each run's GPU use and warning below it
#
#   bench/gpu.sh               # on a GPU node (e.g. an interactive GPU shell, or bsub < a job running it)
#   bench/gpu.sh --dry-run     # the same steps on a CPU with tiny settings (tests/test_bench_gpu.py)
#
# Everything goes to $BENCH_OUT (default outputs/bench/gpu-<time>/); report.md there is what to paste.
# Python: $PYTHON, else <repo>/.venv/bin/python, else python on PATH.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

DRY=
case "${1:-}" in
    --dry-run) DRY=--dry-run ;;
    "") ;;
    *) echo "usage: bench/gpu.sh [--dry-run]" >&2; exit 2 ;;
esac
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296
export PIPELINE_DATA_DIR=${PIPELINE_DATA_DIR:-$PWD/../shared/data}
OUT=${BENCH_OUT:-outputs/bench/gpu-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
started=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - started )) s)"; }

step "1/3 pipeline doctor"
if [ -n "$DRY" ]; then
    "$PY" -m pipeline.cli doctor | tee "$OUT/doctor.txt"; doctor_rc=${PIPESTATUS[0]}
else
    "$PY" -m pipeline.cli doctor --require-gpu | tee "$OUT/doctor.txt"; doctor_rc=${PIPESTATUS[0]}
    if [ "$doctor_rc" -ne 0 ]; then
        echo "bench/gpu.sh: no usable GPU (the problem lines above say why); nothing measured" >&2
        exit 1
    fi
fi

step "2/3 pytest -m gpu"
"$PY" -m pytest -m gpu tests -q -rs -p no:cacheprovider --basetemp "$OUT/pytest-tmp" 2>&1 | tee "$OUT/gpu-tests.txt"
tests_rc=${PIPESTATUS[0]}

step "3/3 bench.gpu"
"$PY" -m bench.gpu $DRY --out "$OUT/gpu.json" 2>&1 | tee "$OUT/bench.txt"
bench_rc=${PIPESTATUS[0]}

{
    echo "### bench/gpu.sh $DRY ($(date -u +%Y-%m-%dT%H:%MZ), $(( $(date +%s) - started )) s)"
    echo
    echo '```'
    cat "$OUT/doctor.txt"
    echo '```'
    echo
    echo "gpu-marked tests: $(tail -n 1 "$OUT/gpu-tests.txt")"
    echo
    sed -n '/^\*\*/,$p' "$OUT/bench.txt" | grep -v '^results: '
} > "$OUT/report.md"
step "report: $OUT/report.md (paste into docs/performance.md)"
cat "$OUT/report.md"
[ "$doctor_rc" -eq 0 ] && [ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
