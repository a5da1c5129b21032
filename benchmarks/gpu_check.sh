#!/usr/bin/env bash
# One short GPU session: the gpu-marked tests, the Trainer-overhead benchmark and a full
# default sentiment run in bf16, output under $OUT. Usage on the GPU machine, from the repo
# root, with SST-2 copied to .gpudata/SST-2/ (git-ignored, carried):
#   bash benchmarks/gpu_check.sh
set -uo pipefail
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TASKZOO_HOME=/tmp/tzhome TASKZOO_MIRROR="$PWD/.gpudata"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)"
} 2>&1 | tee "$OUT/env.txt"
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -2
python3 -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -15
python3 benchmarks/trainer_overhead.py --device cuda --precision bf16-mixed --steps 300 \
  2>&1 | tee "$OUT/overhead_bf16.txt"
python3 -m taskzoo.cli run sentiment --device cuda --precision bf16-mixed --out /tmp/run_bf16 \
  --quiet --json 2>&1 | tee "$OUT/sentiment_bf16.json"
python3 -m taskzoo.cli run sentiment --device cuda --out /tmp/run_fp32 --quiet --json \
  2>&1 | tee "$OUT/sentiment_fp32.json"
