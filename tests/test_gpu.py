"""GPU checks, run on a CUDA machine with `pytest -m gpu` (CI has no GPU and deselects them)."""

from __future__ import annotations

import re

import pytest
import torch

import taskzoo
from taskzoo.data.tiny_pos import load_tiny_pos
from taskzoo.data.tiny_sentiment import load_tiny_sentiment

pytestmark = pytest.mark.gpu


def _positive(out):
    """P(positive) from a {"label", "score"} answer: comparable across a near-tie."""
    return out["score"] if out["label"] == "positive" else 1 - out["score"]


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_tiny_sentiment_trains_on_cuda(tmp_path, precision):
    assert torch.cuda.is_available(), "gpu tests need CUDA"
    result = taskzoo.run("sentiment", dataset="tiny", epochs=8, device="cuda", precision=precision,
                         out=tmp_path / precision, progress=False)
    assert result.metrics["dev/accuracy"] >= 0.9
    assert next(result.model.parameters()).device.type == "cuda"
    # the predictor on CUDA, over the 64 labelled dev sentences (as in test_sentiment.py)
    dev = load_tiny_sentiment()[1]
    out = result.predictor([text for text, _ in dev])
    assert all(o["label"] in ("negative", "positive") and 0.5 <= o["score"] <= 1.0 for o in out)
    correct = sum(o["label"] == ("negative", "positive")[y] for o, (_, y) in zip(out, dev))
    assert correct / len(dev) >= 0.9  # H200, seeds 0-2, each precision: 0.984-1.0


def test_auto_device_picks_cuda(tmp_path):
    from taskzoo.runtime import resolve_device

    assert resolve_device("auto").type == "cuda"
    run_dir = taskzoo.run("sentiment", dataset="tiny", epochs=2, out=tmp_path / "r",
                          progress=False).run_dir
    clf = taskzoo.load_run(run_dir, device="auto")
    assert next(clf.model.parameters()).device.type == "cuda"
    # the same weights answer the same on CUDA as on the CPU (fp32 both: "32" is no TF32)
    texts = [text for text, _ in load_tiny_sentiment()[1]] + ["fine", "bad", "zzqx"]
    on_gpu, on_cpu = clf(texts), taskzoo.load_run(run_dir, device="cpu")(texts)
    for text, g, c in zip(texts, on_gpu, on_cpu):
        assert _positive(g) == pytest.approx(_positive(c), abs=1e-3), text
        # after 2 epochs some scores are 0.500x: only a near-tie may fall either way
        assert g["label"] == c["label"] or c["score"] < 0.501, text


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_tiny_pos_trains_on_cuda(tmp_path, precision):
    """On CUDA the encoder takes the packed-sequence path (cuDNN); CPU tests cover the other."""
    result = taskzoo.run("pos", dataset="tiny", epochs=10, device="cuda", precision=precision,
                         out=tmp_path / precision, progress=False)
    assert result.metrics["test/upos_accuracy"] >= 0.95
    # the tagger on CUDA, on the test split as raw text (as in test_pos.py), against gold
    test = load_tiny_pos()["test"]
    texts = [re.sub(r" ([.,!?]|n't)(?= |$)", r"\1", " ".join(s.words)).replace("$ ", "$")
             for s in test]  # "They don't want to book that table."
    out = result.predictor(texts)
    assert [o["tokens"] for o in out] == [list(s.words) for s in test]
    pairs = [(g, p) for s, o in zip(test, out) for g, p in zip(s.upos, o["tags"])]
    assert sum(g == p for g, p in pairs) / len(pairs) >= 0.95  # H200, seeds 0-2: 0.975-0.994


def test_cartpole_ppo_trains_with_the_policy_on_cuda(tmp_path):
    """Environments stay on the CPU; the policy, rollouts' forward passes and updates on CUDA."""
    result = taskzoo.run("cartpole", device="cuda", total_timesteps=8192, eval_freq=4096,
                         out=tmp_path / "ppo", progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert result.metrics["eval/mean_return"] > 30
    # a pole falling right (angle, angular velocity > 0) needs a push right (1), and left (0)
    assert result.predictor([[0.0, 0.0, 0.1, 0.5], [0.0, 0.0, -0.1, -0.5]]) == [1, 0]


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_image_classification_trains_on_cuda_channels_last(tmp_path, precision):
    """Pinned-memory batches, channels-last convolutions, one loader worker, on the GPU."""
    result = taskzoo.run("image_classification", dataset="digits", epochs=4, device="cuda",
                         precision=precision, out=tmp_path / precision, progress=False)
    param = next(result.model.parameters())
    assert param.device.type == "cuda"
    conv = next(m for m in result.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert result.metrics["test/accuracy"] >= 0.85
    from taskzoo.data.images import load_digits

    arrays = list(load_digits().arrays[:64])
    on_cpu = taskzoo.load_run(tmp_path / precision, device="cpu")(arrays)
    on_gpu = result.predictor(arrays)
    # the same weights on two devices: labels agree except where two classes nearly tie
    agree = sum(a["label"] == b["label"] for a, b in zip(on_gpu, on_cpu)) / len(arrays)
    assert agree >= 0.98


@pytest.mark.parametrize("mode", ["denoise", "vae"])
def test_autoencoder_modes_train_on_cuda_in_bf16(tmp_path, mode):
    """The VAE's z draws and the U-Net's skips under bf16 autocast, on the GPU."""
    result = taskzoo.run("autoencoder", mode=mode, dataset="digits", epochs=3, batch_size=32,
                         warmup_steps=10, device="cuda", precision="bf16-mixed",
                         out=tmp_path / mode, progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    m = result.metrics
    if mode == "denoise":
        assert m["test/psnr"] > m["test/psnr_noisy"]
    else:
        assert -177 < m["test/elbo"] < 0  # better than a coin per pixel (256 ln 2 nats)
        assert len(result.predictor.sample(4)) == 4


@pytest.mark.parametrize("model", ["fastestdet", "yolo_tiny"])
def test_detection_trains_on_cuda_in_bf16(tmp_path, model):
    assert torch.cuda.is_available(), "gpu tests need CUDA"
    result = taskzoo.run("detection", dataset="shapes", model=model, epochs=4, device="cuda",
                         precision="bf16-mixed", out=tmp_path / model, progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert all(v == v for v in result.metrics.values())  # no NaN from bf16 boxes
    import numpy as np

    out = result.predictor(np.zeros((96, 128, 3), np.uint8), conf=0.0, max_det=3)
    assert len(out["boxes"]) <= 3 and all(0 <= b[2] <= 128 for b in out["boxes"])


@pytest.mark.gpu
def test_captioning_trains_on_cuda_in_bf16_with_a_frozen_then_trained_encoder(tmp_path):
    assert torch.cuda.is_available(), "gpu tests need CUDA"
    result = taskzoo.run("captioning", dataset="shapes", encoder="fastestdet",
                         encoder_init="fastestdet.coco", image_size=64, freeze_encoder=1,
                         epochs=3, device="cuda", precision="bf16-mixed", out=tmp_path / "cap",
                         progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert all(v == v for v in result.metrics.values())  # no NaN from bf16 attention
    assert result.metrics["test/bleu4"] > result.metrics["test/bleu4_prior"]
    import numpy as np

    out = result.predictor(np.zeros((64, 64, 3), np.uint8), attention=True)
    assert out["caption"] and len(out["attention"][0]) == out["grid"][0] * out["grid"][1]


@pytest.mark.parametrize("task", ["sentiment", "pos"])
def test_a_pretrained_encoder_fine_tunes_on_cuda_in_bf16(tmp_path, monkeypatch, task):
    """The tiny random BERT of test_transfer.py, as hf:<repo>@<commit>, under bf16 autocast."""
    from tiny_bert import SPEC, write_tiny_bert

    write_tiny_bert(tmp_path / "mirror" / "tiny-bert")
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    result = taskzoo.run(task, dataset="tiny", model=SPEC, lr=1e-3 if task == "sentiment" else 2e-3,
                         epochs=6 if task == "sentiment" else 8, train_embeddings=True,
                         device="cuda", precision="bf16-mixed", out=tmp_path / task,
                         progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    key = "dev/accuracy" if task == "sentiment" else "test/upos_accuracy"
    assert result.metrics[key] >= 0.8  # as on the CPU (test_transfer.py)
