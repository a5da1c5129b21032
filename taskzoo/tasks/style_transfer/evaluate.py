"""The style task's figures: the network's losses in its own loss network and in a scoring
network it never saw (Lite2 by default), its speed, and the two per-image baselines on the
same test photos (the optimisation with ImageNet weights, and with random ones).

Every figure is a relative loss (`perceptual.py`): content 0 is the photo itself, style 1 is
as far from the painting's Grams as their own size. `test/photo_style` is the unstylised
photo's style loss: what doing nothing scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from taskzoo.tasks.style_transfer.perceptual import LossNetwork, StyleTargets, relative_losses

__all__ = ["Recipe", "baseline_figures", "loss_network", "network_figures", "recipe",
           "stylise_batches"]


@dataclass(frozen=True)
class Recipe:
    """What the per-image optimisation needs, taken from a run's config (and saved with the
    predictor): the loss network, its layers and weights, the painting's size."""

    loss_net: str = "efficientnet_lite0"
    loss_init: str = "imagenet"
    content_layers: tuple[int, ...] = (4,)
    style_layers: tuple[int, ...] = (1, 2, 3, 4, 5)
    transform: str = "none"
    content_weight: float = 1.0
    style_weight: float = 2.0
    tv_weight: float = 0.0
    style_size: int = 256
    steps: int = 300
    optimize_size: int = 384


def recipe(cfg: Any) -> Recipe:
    """The Recipe of a style config."""
    return Recipe(cfg.loss_net, cfg.loss_init, tuple(cfg.content_layers),
                  tuple(cfg.style_layers), cfg.transform, cfg.content_weight, cfg.style_weight,
                  cfg.tv_weight, cfg.style_size, cfg.steps, cfg.optimize_size)


def _backbone(name: str, init: str) -> nn.Module:
    from taskzoo.models import build

    if init == "random":
        # the random baseline is the same network in every run; the caller's RNG is untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return build(name)
    from taskzoo.weights import resolve_spec

    return resolve_spec(f"{name}.imagenet", task=None).restore(device="cpu").model.float()


def loss_network(name: str, init: str, *, content: tuple[int, ...], style: tuple[int, ...],
                 transform: str = "none", runtime: Any = None) -> LossNetwork:
    """A frozen EfficientNet-Lite (ImageNet weights through the hub, or random ones) read at
    the recipe's layers, with the ImageNet normalisation its weights expect, placed on
    `runtime`'s device. Built and placed outside inference mode even when called inside it:
    the per-image optimisation differentiates through it."""
    with torch.inference_mode(False):
        net = LossNetwork(_backbone(name, init), content=content, style=style,
                          transform=transform).eval()
        return runtime.place(net) if runtime is not None else net


def stylise_batches(task: Any, model: nn.Module, photos: Any):
    """(photos, stylised) batches on the device, in evaluation order."""
    for start in range(0, len(photos), task.cfg.eval_batch_size):
        x = torch.stack([photos[i] for i in range(start, min(len(photos),
                                                            start + task.cfg.eval_batch_size))])
        x = task.runtime.to_device(x)
        yield x, model(x).float().clamp(0, 1)


def _score(net: LossNetwork, grams: list[torch.Tensor], x: torch.Tensor,
           y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return relative_losses(net, y, StyleTargets.for_photo(net, x, grams))


def network_figures(task: Any, model: nn.Module, data: Any, split: str) -> dict[str, float]:
    """`split/loss` (the training objective), `split/content` and `split/style` in the
    scoring network, and their values in the loss network (`objective_*`)."""
    cfg = task.cfg
    net, scorer = task.loss_network(), task.scoring_network()
    own_grams, score_grams = task.painting_grams(), task.painting_grams(scorer)
    sums = {k: 0.0 for k in ("content", "style", "objective_content", "objective_style",
                             "photo_style")}
    n = 0
    with torch.no_grad():
        for x, y in stylise_batches(task, model, data.splits[split]):
            oc, os_ = _score(net, own_grams, x, y)
            sc, ss = _score(scorer, score_grams, x, y)
            _, ps = _score(scorer, score_grams, x, x)
            for k, v in (("content", sc), ("style", ss), ("objective_content", oc),
                         ("objective_style", os_), ("photo_style", ps)):
                sums[k] += float(v.sum())
            n += len(x)
    out = {f"{split}/{k}": v / n for k, v in sums.items()}
    out[f"{split}/loss"] = (cfg.content_weight * out[f"{split}/objective_content"]
                            + cfg.style_weight * out[f"{split}/objective_style"])
    return out


def _speed(task: Any, model: nn.Module, photos: Any) -> float:
    """Images per second of the network on `photos` (batches of eval_batch_size, after one
    warm-up batch), as the predictor runs it."""
    with task.runtime.inference():
        next(stylise_batches(task, model, photos))
        task.runtime.synchronize()
        start = time.perf_counter()
        count = sum(len(x) for x, _ in stylise_batches(task, model, photos))
        task.runtime.synchronize()
    return count / max(time.perf_counter() - start, 1e-9)


def baseline_figures(task: Any, model: nn.Module,
                     data: Any) -> tuple[dict[str, float], dict[str, list[torch.Tensor]]]:
    """On the first `baseline_photos` test photos: the per-image optimisation with the
    recipe's loss network (`test/optimized_*`) and with the same network at random weights
    (`test/random_*`), scored as the network is, with seconds per photo; and the network's
    images/s on all the test photos. Also returns each baseline's images [1, 3, H, W]."""
    from taskzoo.tasks.style_transfer.optimize import optimize_image

    cfg = task.cfg
    photos = data.splits["test"]
    out = {"test/images_per_s": _speed(task, model, photos)}
    count = min(cfg.baseline_photos, len(photos))
    if not count:
        return out, {}
    scorer = task.scoring_network()
    score_grams = task.painting_grams(scorer)
    painting = task.runtime.to_device(data.painting)
    nets = {"optimized": task.loss_network(),
            "random": loss_network(cfg.loss_net, "random", content=cfg.content_layers,
                                   style=cfg.style_layers, transform=cfg.transform,
                                   runtime=task.runtime)}
    made: dict[str, list[torch.Tensor]] = {}
    for name, net in nets.items():
        sums = {"content": 0.0, "style": 0.0, "seconds": 0.0}
        images = []
        grams = StyleTargets.of(net, None, painting).grams
        for i in range(count):
            x = task.runtime.to_device(photos[i][None])
            res = optimize_image(net, x, StyleTargets.for_photo(net, x, grams),
                                 steps=cfg.baseline_steps,
                                 content_weight=cfg.content_weight, style_weight=cfg.style_weight,
                                 tv_weight=cfg.tv_weight, progress=False)
            with torch.no_grad():
                c, s = _score(scorer, score_grams, x, res.image)
            sums["content"] += float(c.sum())
            sums["style"] += float(s.sum())
            sums["seconds"] += res.seconds
            images.append(res.image.cpu())
        made[name] = images
        out.update({f"test/{name}_{k}": v / count for k, v in sums.items()})
    return out, made
