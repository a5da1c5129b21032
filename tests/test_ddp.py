"""DDP on CPU: `torchrun --nproc_per_node 2 taskzoo run ...` with the gloo backend."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file


@pytest.mark.timeout(240)
def test_two_process_gloo_run_matches_the_sharded_budget(tmp_path, cli_env):
    args = ["run", "sentiment", "dataset=tiny", "epochs=10",
            "--device", "cpu", "--quiet"]
    single = tmp_path / "single"
    subprocess.run([sys.executable, "-m", "taskzoo.cli", *args, "--out", str(single)],
                   env=cli_env, check=True, capture_output=True, timeout=120)
    ddp = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "taskzoo.cli", *args, "--out", str(ddp)],
        env={**cli_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((single / "metrics.json").read_text())
    two = json.loads((ddp / "metrics.json").read_text())
    # each process trains on half of every epoch's batches: half the optimizer steps
    assert two["train/steps"] == one["train/steps"] // 2
    assert two["dev/accuracy"] >= 0.75
    weights = load_file(str(ddp / "best.safetensors"))
    assert not any(k.startswith("module.") for k in weights), "DDP wrapper leaked into weights"
    assert not list(ddp.glob("*.tmp"))
