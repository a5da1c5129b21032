"""Gatys, Ecker & Bethge (2016): the pixels of one image optimised until a loss network sees
the photo's content and the painting's style in it.

The image starts from the photo (Gatys started from noise; starting from the photo reaches
the same kind of picture in a fraction of the steps, which is what makes a CPU minute
enough) and is optimised with L-BFGS, as their code and Johnson's `neural-style` do, or Adam.
A small total-variation term keeps the pixel noise that the loss network cannot see out of
the result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from taskzoo.tasks.style_transfer.perceptual import LossNetwork, StyleTargets, relative_losses

__all__ = ["OptimizeResult", "optimize_image", "total_variation"]


@dataclass
class OptimizeResult:
    """What `optimize_image` made: the image and its figures."""

    image: torch.Tensor  # [1, 3, H, W] in [0, 1]
    content: float  # the final relative content loss (in the loss network that optimised it)
    style: float  # the final relative style loss
    seconds: float
    evaluations: int  # forward + backward passes of the loss network


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels [B] (x in [0, 1])."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def optimize_image(net: LossNetwork, photo: torch.Tensor, targets: StyleTargets, *,
                   steps: int = 300, content_weight: float = 1.0, style_weight: float = 10.0,
                   tv_weight: float = 0.0, optimizer: str = "lbfgs", lr: float = 0.0,
                   progress: bool | None = None,
                   on_step: Callable[[int, float], None] | None = None) -> OptimizeResult:
    """`photo` [1, 3, H, W] in [0, 1] optimised against `targets` (made for this photo) for
    `steps` evaluations of the loss network. `lr` 0 is the optimiser's default (L-BFGS 1,
    Adam 0.02). Progress goes to stderr when it is a terminal (or `progress=True`).

    >>> out = optimize_image(net, photo, StyleTargets.of(net, photo, painting))  # doctest: +SKIP
    """
    # the pixels need gradients even when called under inference mode (a run's final figures)
    with torch.inference_mode(False), torch.enable_grad():
        return _optimize(net, photo, targets, steps=steps, content_weight=content_weight,
                         style_weight=style_weight, tv_weight=tv_weight, optimizer=optimizer,
                         lr=lr, progress=progress, on_step=on_step)


def _optimize(net: LossNetwork, photo: torch.Tensor, targets: StyleTargets, *, steps: int,
              content_weight: float, style_weight: float, tv_weight: float, optimizer: str,
              lr: float, progress: bool | None,
              on_step: Callable[[int, float], None] | None) -> OptimizeResult:
    from tqdm import tqdm

    start = time.perf_counter()
    # clones: tensors made under inference mode cannot be saved for backward
    targets = StyleTargets([t.clone() for t in targets.content], [g.clone() for g in targets.grams])
    x = photo.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [x], lr=lr or 1.0, max_iter=steps, max_eval=steps, history_size=50, tolerance_grad=0.0,
            tolerance_change=0.0, line_search_fn="strong_wolfe")
    elif optimizer == "adam":
        opt = torch.optim.Adam([x], lr=lr or 0.02)
    else:
        raise ValueError(f"optimizer must be lbfgs or adam, got {optimizer!r}")
    count = 0
    last = (0.0, 0.0)
    bar = tqdm(total=steps, unit="step", desc="stylise", leave=False,
               disable=not (sys.stderr.isatty() if progress is None else progress))

    def closure() -> torch.Tensor:
        nonlocal count, last
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():  # the pixels stay in range, as the PyTorch tutorial keeps them
            x.clamp_(0, 1)
        c, s = relative_losses(net, x, targets)
        loss = content_weight * c.sum() + style_weight * s.sum()
        if tv_weight:
            loss = loss + tv_weight * total_variation(x).sum()
        loss.backward()
        count += 1
        last = (float(c.detach().sum()), float(s.detach().sum()))
        bar.update(1)
        if on_step is not None:
            on_step(count, float(loss.detach()))
        return loss

    try:
        if optimizer == "lbfgs":  # one call runs the whole budget of evaluations
            opt.step(closure)
        else:
            while count < steps:
                opt.step(closure)
    finally:
        bar.close()
    with torch.no_grad():
        image = x.detach().clamp(0, 1)
    return OptimizeResult(image, last[0], last[1], time.perf_counter() - start, count)
