"""DDP on CPU: `torchrun --nproc_per_node 2 taskzoo run ...` with the gloo backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = str(Path(__file__).with_name("ddp_worker.py"))
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


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


@pytest.mark.timeout(240)
def test_ddp_all_reduces_gradients_and_gives_each_process_its_own_randomness(tmp_path, cli_env):
    """Two processes on batches of 8 must end exactly where one process on batches of 16
    ends (same order, each step's gradient averaged over both halves). Two independent
    half-data runs would end apart, and apart from the single run."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir()
    ddp.mkdir()
    subprocess.run([sys.executable, WORKER, str(single), "16"], env=cli_env, check=True,
                   capture_output=True, timeout=120)
    proc = subprocess.run([*TORCHRUN, WORKER, str(ddp), "8"], env={**cli_env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = load_file(str(single / "rank0.safetensors"))
    ranks = [load_file(str(ddp / f"rank{r}.safetensors")) for r in (0, 1)]
    for key in one:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0)
        torch.testing.assert_close(ranks[0][key], one[key], rtol=1e-5, atol=1e-6)
    logs = [json.loads((ddp / f"rank{r}.json").read_text()) for r in (0, 1)]
    alone = json.loads((single / "rank0.json").read_text())
    assert logs[0]["steps"] == logs[1]["steps"] == alone["steps"] == 12  # 3 epochs x 4
    assert logs[0]["draws"] == alone["draws"]  # rank 0 keeps the seed
    assert not set(logs[0]["draws"]) & set(logs[1]["draws"])  # rank 1 draws its own
    # resuming needs the same number of processes (each one's share of every epoch and its
    # random streams are in the checkpoint)
    proc = subprocess.run([sys.executable, WORKER, str(ddp), "8", "--resume"], env=cli_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "written by a run of 2 process(es), this one has 1" in proc.stderr
