#!/usr/bin/env bash
# GPU check of `taskzoo bench` and of loading released weights on CUDA, output under $OUT.
# On the GPU machine, from the repo root, with SST-2 and UD_English-EWT copied to .gpudata/
# and missing wheels in .whl/ (both git-ignored, carried): bash benchmarks/gpu_bench.sh
set -uo pipefail
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TASKZOO_HOME=/tmp/tzhome TASKZOO_MIRROR="$PWD/.gpudata"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee "$OUT/env.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl 2>&1 | tail -2
  export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -2
python3 -c "import taskzoo; print(taskzoo.load('sentiment', device='cuda')(['a gripping film']))" \
  2>&1 | tee "$OUT/load_cuda.txt"
python3 -m taskzoo.cli bench sentiment pos --device cuda --precision bf16-mixed \
  --json "$OUT/bench_gpu_bf16.json" 2>&1 | tee "$OUT/bench_gpu_bf16.txt"
