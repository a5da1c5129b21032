#!/usr/bin/env bash
# One short GPU session: the gpu-marked tests, then the precisions side by side (true fp32,
# TF32, bf16 autocast) on a 300-step SST-2 run and on a bare fp32 matmul, output under $OUT.
# On the GPU machine, from the repo root, with SST-2 copied to .gpudata/SST-2/ and the wheels
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
python3 -m pytest -m gpu -q -p no:cacheprovider -x --durations=8 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -25
# Is TF32 worth a precision of its own? A bare 8192^3 fp32 matmul, then the default model.
python3 - <<'PY' 2>&1 | tee "$OUT/matmul.txt"
import time, torch
from taskzoo.runtime import Runtime
a = torch.randn(8192, 8192, device="cuda"); b = torch.randn_like(a)
for precision in ("32", "tf32"):
    with Runtime.create(device="cuda", precision=precision).activate():
        for _ in range(3): a @ b
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(20): a @ b
        torch.cuda.synchronize(); dt = (time.perf_counter() - t) / 20
        print(f"precision={precision}: {2 * 8192**3 / dt / 1e12:.1f} TFLOP/s fp32 matmul")
print("after: matmul fp32_precision =", torch.backends.cuda.matmul.fp32_precision)
PY
for p in 32 tf32 bf16-mixed; do
  python3 -m taskzoo.cli run sentiment --device cuda --precision $p max_steps=300 \
    --out /tmp/sst_$p --quiet --json 2>&1 | tee "$OUT/sentiment_$p.json" | \
    grep -E '"(dev/accuracy|train/samples_per_s|train/time_s)"'
done
