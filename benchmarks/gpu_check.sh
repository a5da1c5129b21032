#!/usr/bin/env bash
# One short GPU session: the gpu-marked tests, the Trainer-overhead benchmark, a full
# default sentiment run in bf16 and CartPole PPO on cuda vs cpu, output under $OUT. Usage on
# the GPU machine, from the repo root, with SST-2 copied to .gpudata/SST-2/ and the wheels
# of packages the image lacks in .whl/ (both git-ignored, carried):
#   bash benchmarks/gpu_check.sh
set -uo pipefail
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TASKZOO_HOME=/tmp/tzhome TASKZOO_MIRROR="$PWD/.gpudata"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)"
} 2>&1 | tee "$OUT/env.txt"
# packages the GPU image lacks travel as wheels in .whl/ (git-ignored, carried)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl 2>&1 | tail -2
  export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -2
python3 -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -15
python3 benchmarks/trainer_overhead.py --device cuda --precision bf16-mixed --steps 300 \
  2>&1 | tee "$OUT/overhead_bf16.txt"
python3 -m taskzoo.cli run sentiment --device cuda --precision bf16-mixed --out /tmp/run_bf16 \
  --quiet --json 2>&1 | tee "$OUT/sentiment_bf16.json"
# RL: the same CartPole PPO recipe with the policy on the GPU and on this host's CPU
for dev in cuda cpu; do
  python3 -m taskzoo.cli run cartpole --device $dev --out /tmp/cartpole_$dev --quiet --json \
    stop_when_solved=true 2>&1 | tee "$OUT/cartpole_ppo_$dev.json"
done
