"""The autoencoder task on the tiny digits and on small colour folders: every mode trains,
reports its figures and pictures, and predicts; noise is reproducible; bad combinations are
clear errors; `taskzoo predict --save` writes images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import taskzoo
from taskzoo.data import pairs
from taskzoo.data.images import load_digits
from taskzoo.data.loader import SeededSamples
from taskzoo.errors import ConfigError, DataError, UsageError

FAST = dict(dataset="digits", epochs=3, batch_size=32, warmup_steps=10, width=16, device="cpu",
            progress=False)


def _run(tmp_path, name, **kw):
    return taskzoo.run("autoencoder", out=tmp_path / name, **{**FAST, **kw})


@pytest.fixture(scope="module")
def features_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("ae"), "features", mode="features", code_dim=8,
                stack=2)


def test_features_mode_compares_codes_with_pca(features_run):
    m, d = features_run.metrics, features_run.run_dir
    for key in ("test/mse_ae", "test/mse_pca", "test/probe_accuracy_ae",
                "test/probe_accuracy_pca", "test/probe_accuracy_layer1",
                "test/probe_accuracy_layer2", "test/psnr", "test/ssim"):
        assert key in m, key
    assert m["test/probe_accuracy_ae"] == m["test/probe_accuracy_layer2"]  # the last layer
    assert m["test/probe_accuracy_pca"] > 0.8  # 8 components of the digits separate well
    assert m["test/probe_accuracy_ae"] > 0.3  # chance is 0.1, even after a few epochs
    assert m["test/mse_ae"] == pytest.approx(m["test/mse"], rel=1e-4)
    for png in ("codes_2d.png", "reconstructions.png", "training_curves.png"):
        assert (d / png).stat().st_size > 1000, png
    # the predictor returns the code of each image, the size of the code layer
    codes = features_run.predictor([load_digits().arrays[0], load_digits().arrays[1]])
    assert len(codes) == 2 and len(codes[0]) == 8 and codes[0] != codes[1]


def test_reconstruct_beats_the_mean_image(tmp_path):
    res = _run(tmp_path, "rec")
    digits = load_digits()
    x = np.asarray([np.asarray(Image.fromarray(a).resize((16, 16), Image.BILINEAR))
                    for a in digits.arrays], dtype=np.float64) / 255
    mean_mse = float(np.mean((x - x.mean(0)) ** 2))  # predicting the average digit
    assert res.metrics["test/mse"] < 0.7 * mean_mse
    assert 0 < res.metrics["test/ssim"] <= 1
    out = res.predictor(digits.arrays[5])
    assert isinstance(out, Image.Image) and out.size == (16, 16) and out.mode == "L"


def test_denoise_beats_its_noisy_input_and_the_noise_is_fixed(tmp_path):
    res = _run(tmp_path, "dn", mode="denoise")
    m = res.metrics
    assert m["test/psnr"] > m["test/psnr_noisy"] + 2
    # sigma 0.3 on [0, 1] pixels, clipped: about 12 dB, and the same draw every evaluation
    assert 9 < m["test/psnr_noisy"] < 15
    from taskzoo.report import read_records

    seen = {r["dev/psnr_noisy"] for r in read_records(res.run_dir / "metrics.jsonl")
            if "dev/psnr_noisy" in r}
    assert len(seen) == 1 and seen == {m["dev/psnr_noisy"]}  # every evaluation, the same noise
    assert (res.run_dir / "denoised.png").is_file()


def test_corruptions_are_seeded_and_hit_the_asked_fraction():
    image = torch.full((1, 64, 64), 128, dtype=torch.uint8)
    for kind in ("salt_pepper", "mask"):
        samples = SeededSamples([(image, 0)], pairs.Corrupt(kind, amount=0.25), seed=3)
        (a, clean, _), = samples.__getitems__([(0, 0)])
        (b, _, _), = samples.__getitems__([(0, 0)])
        (c, _, _), = samples.__getitems__([(1, 0)])  # another epoch: another draw
        assert torch.equal(a, b) and not torch.equal(a, c)
        hit = (a != clean).float().mean().item()
        assert 0.2 < hit < 0.3, (kind, hit)
    with pytest.raises(ConfigError, match="gaussian, salt_pepper, mask"):
        pairs.Corrupt("speckle")


def test_vae_reports_the_elbo_and_draws_samples(tmp_path):
    res = _run(tmp_path, "vae", mode="vae", latent_dim=4)
    m = res.metrics
    assert m["test/elbo"] == pytest.approx(-(m["test/recon_bce"] + m["test/kl"]), rel=1e-5)
    assert m["test/kl"] > 0 and m["test/recon_bce"] > 0
    # 256 Bernoulli pixels: a useless model pays about 256 * ln 2 = 177 nats
    assert m["test/elbo"] > -177
    for png in ("samples.png", "latent_traversal.png"):
        assert (res.run_dir / png).stat().st_size > 1000
    a, b = res.predictor.sample(3, seed=1), res.predictor.sample(3, seed=1)
    assert len(a) == 3 and a[0].size == (16, 16)
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(res.predictor.sample(1, seed=2)[0]))


def _colour_folder(root: Path, n: int = 48, side: int = 32) -> Path:
    """Digits drawn in a colour on a background of another: learnable chroma from shapes."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        mask = np.asarray(Image.fromarray(digits.arrays[i]).resize((side, side))) / 255.0
        fg = np.array([220, 40, 30]) if digits.labels[i] % 2 else np.array([30, 60, 220])
        bg = np.array([40, 170, 60]) + rng.integers(-20, 20, 3)
        rgb = mask[..., None] * fg + (1 - mask[..., None]) * bg
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(root / f"{i:03d}.png")
    return root


def test_colorize_a_folder_and_save_predictions_from_the_cli(tmp_path, cli_env):
    photos = _colour_folder(tmp_path / "photos")
    res = taskzoo.run("autoencoder", mode="colorize", data=str(photos), image_size=32,
                      depth=2, width=16, train_crop=0, epochs=8, batch_size=8, warmup_steps=10,
                      device="cpu", out=tmp_path / "col", progress=False)
    m = res.metrics
    assert m["test/psnr"] > m["test/psnr_gray"]  # green backgrounds are learnt in 8 epochs
    assert (res.run_dir / "colorized.png").is_file()
    big = Image.open(photos / "000.png").resize((48, 40))
    big.save(tmp_path / "big.jpg")
    out = tmp_path / "coloured"
    proc = subprocess.run([sys.executable, "-m", "taskzoo.cli", "predict", "autoencoder",
                           "--from", str(res.run_dir), str(tmp_path / "big.jpg"),
                           str(photos / "001.png"), "--save", str(out), "--json"],
                          env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["saved"]).name for r in lines] == ["big.png", "001.png"]
    coloured = Image.open(out / "big.png")
    assert coloured.size == (48, 40) and coloured.mode == "RGB"  # the input's own size
    grey = np.asarray(coloured.convert("L"), dtype=float)
    assert np.abs(grey - np.asarray(big.convert("L"), dtype=float)).mean() < 12  # same lightness


def test_bad_combinations_are_clear_errors(tmp_path, features_run):
    with pytest.raises(ConfigError, match="copy the input"):
        _run(tmp_path, "x", model="unet_small")
    with pytest.raises(DataError, match="colour"):
        _run(tmp_path, "y", mode="colorize", model="unet_small")
    with pytest.raises(UsageError, match="code vectors"):
        features_run.predictor.save([0.0], tmp_path / "a")
    with pytest.raises(UsageError, match="draws from a VAE"):
        features_run.predictor.sample(2)


RELEASED = {"conv_ae.fashion_mnist": "reconstruct", "conv_ae.fashion_mnist_features": "features",
            "unet_small.fashion_mnist_denoise": "denoise", "vae.mnist": "vae",
            "unet_small.flickr8k_colorize": "colorize"}


def test_released_weights_of_every_mode_load_offline_and_do_their_job(monkeypatch):
    from taskzoo import weights

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    assert weights.resolve("autoencoder").name == "conv_ae.fashion_mnist"  # the default
    digit = np.kron(load_digits().arrays[3], np.ones((4, 4), np.uint8))[2:30, 2:30]  # 28x28
    for name, mode in RELEASED.items():
        card = weights.resolve(name)
        assert card.task == "autoencoder" and card.size <= 10_000_000, name
        model = taskzoo.load("autoencoder", weights=name, device="cpu")
        assert model.mode == mode, name
        if mode == "features":
            assert len(model(digit)) == 32
        elif mode == "vae":
            assert len(model.sample(2)) == 2 and model(digit).size == (28, 28)
        elif mode == "colorize":
            photo = np.stack([digit] * 3, axis=-1)  # grey in, colour out, at the input's size
            out = model(photo)
            assert out.mode == "RGB" and out.size == (28, 28)
        else:
            out = np.asarray(model(digit), dtype=float)
            assert out.shape == (28, 28) and np.abs(out - digit).mean() < 60, name
