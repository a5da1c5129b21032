"""GPU checks, run on a CUDA machine with `pytest -m gpu` (CI has no GPU and deselects them)."""

from __future__ import annotations

import pytest
import torch

import taskzoo

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_tiny_sentiment_trains_on_cuda(tmp_path, precision):
    assert torch.cuda.is_available(), "gpu tests need CUDA"
    result = taskzoo.run("sentiment", dataset="tiny", epochs=8, device="cuda", precision=precision,
                         out=tmp_path / precision, progress=False)
    assert result.metrics["dev/accuracy"] >= 0.9
    assert next(result.model.parameters()).device.type == "cuda"
    assert result.predictor("the film is superb .")["label"] == "positive"


def test_auto_device_picks_cuda(tmp_path):
    from taskzoo.runtime import resolve_device

    assert resolve_device("auto").type == "cuda"
    clf = taskzoo.load_run(
        taskzoo.run("sentiment", dataset="tiny", epochs=2, out=tmp_path / "r", progress=False).run_dir,
        device="auto")
    assert clf(["fine", "bad"])[0]["label"] in ("positive", "negative")


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_tiny_pos_trains_on_cuda(tmp_path, precision):
    """On CUDA the encoder takes the packed-sequence path (cuDNN); CPU tests cover the other."""
    result = taskzoo.run("pos", dataset="tiny", epochs=10, device="cuda", precision=precision,
                         out=tmp_path / precision, progress=False)
    assert result.metrics["test/upos_accuracy"] >= 0.95
    out = result.predictor("The old teacher saw a dog in the garden.")
    assert out["tags"][:4] == ["DET", "ADJ", "NOUN", "VERB"]


def test_cartpole_ppo_trains_with_the_policy_on_cuda(tmp_path):
    """Environments stay on the CPU; the policy, rollouts' forward passes and updates on CUDA."""
    result = taskzoo.run("cartpole", device="cuda", total_timesteps=8192, eval_freq=4096,
                         out=tmp_path / "ppo", progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert result.metrics["eval/mean_return"] > 30
    assert result.predictor([0.0, 0.0, 0.05, 0.0]) in ([0], [1])
