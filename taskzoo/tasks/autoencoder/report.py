"""The autoencoder task's figures and pictures: PSNR/SSIM per image (torchmetrics), codes as
features against PCA (`mode=features`), and each mode's PNGs (input | output grids, VAE
samples and a latent traversal, colorizations)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from taskzoo.data import pairs
from taskzoo.data.loader import eval_batches


def _codes_and_pixels(task: Any, model: nn.Module, examples: Any) -> tuple[list[np.ndarray], ...]:
    """Each code layer's outputs, the pixels (flattened, in [0, 1]) and the reconstructions
    of every image of a split, in order."""
    layers: list[list[np.ndarray]] = []
    pixels, recons = [], []
    for _, (x, _, _) in eval_batches(examples, batch_size=task.cfg.eval_batch_size,
                                     collate=pairs.PairCollate(), transform=pairs.Clean()):
        xd = task.runtime.to_device(x)
        codes = model.encode_layers(xd)
        layers = layers or [[] for _ in codes]
        for acc, c in zip(layers, codes):
            acc.append(c.float().cpu().numpy())
        recons.append(torch.sigmoid(model.decode(codes[-1])).float().cpu().flatten(1).numpy())
        pixels.append(x.flatten(1).numpy())
    return [np.concatenate(a) for a in layers], np.concatenate(pixels), np.concatenate(recons)


def probe_metrics(task: Any, model: nn.Module, data: Any) -> dict[str, float]:
    """The autoencoder's code against PCA with as many components, on the same images: test
    reconstruction error, and the test accuracy of one logistic-regression probe trained on
    each set of training codes (and on every code layer of a stack)."""
    from taskzoo.probe import fit_probe, pca_codes

    train_layers, train_px, _ = _codes_and_pixels(task, model, data.train)
    test_layers, test_px, test_recon = _codes_and_pixels(task, model, data.splits["test"])
    pca = pca_codes(train_px, test_px, task.cfg.code_dim, seed=task.cfg.seed)
    mse_ae = float(np.mean((test_recon - test_px) ** 2))
    out = {"test/mse_ae": mse_ae, "test/mse_pca": pca.test_mse,
           "test/mse_ratio_ae_pca": mse_ae / max(pca.test_mse, 1e-12)}
    if not hasattr(data.train, "labels"):  # photos joined from two splits carry no classes
        return out
    y_train, y_test = data.train.labels(), data.splits["test"].labels()
    task._codes = (test_layers[-1], y_test)  # for the 2-D picture
    if len(np.unique(y_train)) < 2:  # a folder of unlabelled images: nothing to probe
        return out
    # the same probes scored on dev too: recipes are chosen on those, never on test's
    scored = [("test", test_px, test_layers, y_test)]
    if "dev" in data.splits:
        dev_layers, dev_px, _ = _codes_and_pixels(task, model, data.splits["dev"])
        scored.append(("dev", dev_px, dev_layers, data.splits["dev"].labels()))
    pca_probe = fit_probe(pca.train, y_train)
    ae_probes = [fit_probe(codes, y_train) for codes in train_layers]
    for split, px, layers, y in scored:
        out[f"{split}/probe_accuracy_pca"] = float(pca_probe.score(pca.pca.transform(px), y))
        accs = [float(p.score(c, y)) for p, c in zip(ae_probes, layers)]
        out[f"{split}/probe_accuracy_ae"] = accs[-1]
        if len(accs) > 1:
            out.update({f"{split}/probe_accuracy_layer{k}": a for k, a in enumerate(accs, 1)})
    return out


def image_figures(pred: torch.Tensor, target: torch.Tensor, *,
                  data_range: float = 1.0) -> dict[str, torch.Tensor]:
    """Per image: mse, psnr (dB) and ssim, from torchmetrics (SSIM's Gaussian window shrinks
    to fit images smaller than 11 pixels)."""
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    pred, target = pred.float(), target.float()
    side = min(pred.shape[-2:])
    kernel = min(11, side if side % 2 else side - 1)
    mse = (pred - target).pow(2).flatten(1).mean(1) / data_range ** 2
    psnr = peak_signal_noise_ratio(pred, target, data_range=data_range, reduction="none",
                                   dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(pred, target, data_range=data_range,
                                               kernel_size=kernel, reduction="none")
    return {"mse": mse, "psnr": psnr, "ssim": ssim}


def _u8(t: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] -> uint8 [H, W] or [H, W, 3]."""
    a = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[2] == 1 else a


def mode_pictures(task: Any, model: nn.Module, data: Any) -> dict[str, bytes | str]:
    """The mode's PNGs on the last final split (test when there is one)."""
    from taskzoo.data.color import gray_rgb, merge_lab
    from taskzoo.report import image_grid_png

    mode, split = task.cfg.mode, task.final_splits[-1]
    x, out, target, extra = next(iter(task._outputs(model, data, split)))
    where = f"{data.name}, {split}"
    pics: dict[str, bytes | str] = {}
    if mode in ("reconstruct", "features"):
        imgs = [_u8(t) for i in range(min(16, len(x))) for t in (x[i], out[i])]
        pics["reconstructions.png"] = image_grid_png(
            imgs, ["input", "output"] * (len(imgs) // 2), title=f"input | output ({where})")
    elif mode == "denoise":
        imgs = [_u8(t) for i in range(min(12, len(x))) for t in (x[i], out[i], target[i])]
        pics["denoised.png"] = image_grid_png(
            imgs, ["noisy", "output", "clean"] * (len(imgs) // 3), cols=9,
            title=f"noisy | output | clean ({task.cfg.noise}, {where})")
    elif mode == "colorize":
        n = min(8, len(x))
        truth = extra[:n].permute(0, 2, 3, 1).numpy()
        pred = merge_lab(x[:n], out[:n])
        imgs = [im for i in range(n) for im in (gray_rgb(truth[i]), pred[i], truth[i])]
        pics["colorized.png"] = image_grid_png(imgs, ["grey", "output", "truth"] * n, cols=6,
                                               title=f"grey | output | truth ({where})")
    elif mode == "vae":
        pics.update(_vae_pictures(task, model, x, where))
    if mode == "features" and getattr(task, "_codes", None) is not None:
        from taskzoo.probe import codes_2d_png

        codes, labels = task._codes
        pics["codes_2d.png"] = codes_2d_png(codes, labels, data.labels,
                                            title=f"{task.cfg.code_dim}-d codes in 2-D ({where})")
    return pics


def _vae_pictures(task: Any, model: nn.Module, x: torch.Tensor, where: str) -> dict[str, bytes]:
    """64 samples from the prior, and a traversal of the two latent dimensions that carry
    the most information (largest KL on these images), the others held at 0."""
    from taskzoo.report import image_grid_png

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(64, model.latent_dim, generator=gen)
    samples = torch.sigmoid(model.decode(task.runtime.to_device(z))).float().cpu()
    mu, logvar = model.encode(task.runtime.to_device(x))
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).float().mean(0).cpu()
    a, b = (int(i) for i in kl.argsort(descending=True)[:2])
    steps = torch.linspace(-2.5, 2.5, 8)
    grid = torch.zeros(64, model.latent_dim)
    grid[:, a] = steps.repeat_interleave(8)
    grid[:, b] = steps.repeat(8)
    walk = torch.sigmoid(model.decode(task.runtime.to_device(grid))).float().cpu()
    return {"samples.png": image_grid_png([_u8(t) for t in samples], [""] * 64,
                                          title=f"64 samples from N(0, I) ({where})"),
            "latent_traversal.png": image_grid_png(
                [_u8(t) for t in walk], [""] * 64,
                title=f"z[{a}] down, z[{b}] across, -2.5..2.5, other dims 0")}
