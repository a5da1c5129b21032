"""yolo_tiny on a pretrained trunk: `backbone=` names the zoo classifier under the neck and
`backbone_init=` its starting weights (by default the backbone's released ImageNet card,
`efficientnet_lite0.imagenet` for `backbone=efficientnet_lite0`).

    taskzoo run detection model=yolo_tiny backbone=efficientnet_lite0   # ImageNet trunk
    taskzoo run detection model=yolo_tiny backbone=efficientnet_lite0 backbone_init=none

The tensors are read here, in the task, never by the model builder. The trunk's pixels are
normalised as its weights were trained (the card's mean and std, EfficientNet-Lite's
(x - 127) / 128): the task records them in the run's data state, so a saved run and
`taskzoo predict` normalise the same way; a run without them (every run before this
option, and the released FastestDet weights) keeps plain x / 255.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from taskzoo.errors import (
    ConfigError,
    DownloadError,
    UnknownNameError,
    did_you_mean,
)
from taskzoo.tasks.common.transfer import BATCHNORMS, load_part
from taskzoo.weights import SpecRules, released_cards, resolve_spec

DEFAULT_BACKBONE = "csp_darknet"  # YOLOv8n's trunk, trained from scratch with the rest
AUTO = "auto"  # backbone_init's default: the backbone's released `.imagenet` card, if any
# zoo classifiers whose `features(x)` give maps at strides 8/16/32 (for the error's hint)
KNOWN = ("csp_darknet", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
         "mobilenet_v3_small")
# the recipe of a pretrained trunk under a fresh neck and head, chosen on PennFudan dev
# (docs/tasks/detection.md): fewer epochs than from scratch, the trunk at 0.3 of the rate
# (dev mAP 0.475, against 0.438 at 0.1), its stem and first two stages frozen (their
# edges and textures are generic, and not back-propagating through the high-resolution
# layers makes a step ~25 % cheaper: 2.9 s against 3.9 s, 16 images at 352 px, 1 thread)
TRUNK_RECIPE: dict[str, Any] = {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05,
                                "epochs": 30, "warmup_steps": 30, "augment": "full",
                                "mosaic": 0.5, "ema": 0.0, "backbone_lr": 0.3,
                                "freeze_at": 2}


def trunk_spec(model: str, backbone: str, value: str) -> str:
    """The weights `backbone_init=value` names for yolo_tiny's trunk, "" for none: `auto`
    is `<backbone>.imagenet` when that card is released, else none; `none` or "" is none.
    Always "" for another model (fastestdet has its own `pretrained_backbone`)."""
    text = str(value or "").strip()
    if model != "yolo_tiny" or text.lower() in ("", "none"):
        return ""
    if text.lower() == AUTO:
        name = f"{backbone_name(backbone)}.imagenet"
        return name if name in released_cards() else ""
    return text


def backbone_name(name: str) -> str:
    """The zoo's canonical name of `backbone=`; ConfigError (closest match) when unknown."""
    from taskzoo.models import MODELS, names

    names()  # registers every family
    try:
        return MODELS.canonical(name)
    except UnknownNameError:
        raise ConfigError(f"backbone={name!r}: no such network in the zoo."
                          f"{did_you_mean(name, names())} yolo_tiny takes a classifier with "
                          f"maps at strides 8/16/32: {', '.join(KNOWN)}") from None


def check_backbone(model: str, backbone: str, value: str) -> str:
    """The canonical backbone name, after checking `backbone=` and `backbone_init=` fit
    `model=` and the backbone has maps at strides 8/16/32 (ConfigError otherwise)."""
    if model != "yolo_tiny":
        if backbone != DEFAULT_BACKBONE:
            raise ConfigError(f"backbone={backbone} is yolo_tiny's trunk; add model=yolo_tiny "
                              f"(model={model} has its own)")
        if str(value).strip().lower() not in (AUTO, "", "none"):
            raise ConfigError(f"backbone_init={value} is for model=yolo_tiny's trunk "
                              f"(model={model}: use init= or pretrained_backbone=true)")
        return backbone
    from taskzoo.models import build

    name = backbone_name(backbone)
    try:
        net = build(name, in_channels=3, num_classes=1, small_input=False)
    except TypeError:  # a builder that does not take images (a text model, an agent)
        net = None
    strides = tuple(getattr(net, "feature_strides", ()) or ())
    if not callable(getattr(net, "features", None)) or strides != (8, 16, 32):
        raise ConfigError(f"backbone={name}: yolo_tiny needs a classifier whose features(x) "
                          f"gives maps at strides 8/16/32 (got {strides or 'none'}); valid: "
                          f"{', '.join(KNOWN)}")
    return name


def _no_trunk(spec: str, task: str | None) -> Exception:
    valid = sorted(n for n in released_cards() if n.endswith(".imagenet"))
    return UnknownNameError(f"backbone_init={spec!r}: not a released weights name or a "
                            f".safetensors with its .json card.{did_you_mean(spec, valid)} "
                            f"ImageNet trunks: {', '.join(valid)}; or auto, or none")


TRUNK_INIT = SpecRules(option="backbone_init", missing=_no_trunk)  # weights of any task


def trunk_source(spec: str, backbone: str) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """(the weights' name, their verified tensors, their data state) for `backbone_init=`.
    ConfigError when they are another network, or are not installed (with how to get them)."""
    try:
        source = resolve_spec(spec, task=None, rules=TRUNK_INIT)
    except DownloadError as exc:  # a pip package's weights that are not installed
        raise ConfigError(f"backbone_init={spec}: {str(exc).splitlines()[0]}; or set "
                          f"backbone_init=none for a random trunk") from None
    card = source.card
    if card.arch != backbone:
        raise ConfigError(f"backbone_init={spec}: those weights are a {card.arch}, but "
                          f"backbone={backbone}; set backbone={card.arch}")
    if int(card.arch_kwargs.get("in_channels", 3)) != 3:
        raise ConfigError(f"backbone_init={spec}: that {card.arch} reads "
                          f"{card.arch_kwargs['in_channels']}-channel images; detection needs RGB")
    return card.name, source.tensors(), dict(source.data)


def load_trunk(trunk: nn.Module, tensors: dict[str, torch.Tensor], spec: str) -> list[str]:
    """Fill `trunk` (the detector's backbone, its classifier dropped) from the tensors;
    returns the names left out (the ImageNet classifier)."""
    return load_part(trunk, tensors, option="backbone_init", spec=spec, what="trunk")


def freeze_trunk(trunk: nn.Module, groups: int, *, name: str) -> None:
    """The trunk's first `groups` layer groups (the stem up) never train."""
    if not groups:
        return
    if not callable(getattr(trunk, "layer_groups", None)):
        raise ConfigError(f"freeze_at={groups} needs a backbone with layer_groups() (the "
                          f"efficientnet_lite models); backbone={name} has none")
    found = [g for g in trunk.layer_groups() if g]  # the dropped classifier's is empty
    if groups >= len(found):
        raise ConfigError(f"freeze_at={groups}: backbone={name} has {len(found)} layer "
                          f"groups; freeze at most {len(found) - 1} (0 trains all)")
    for params in found[:groups]:
        for p in params:
            p.requires_grad_(False)


def fix_frozen_batchnorm(model: nn.Module) -> None:
    """Frozen layers' BatchNorm in eval mode (call after the Trainer's model.train()): a
    layer that does not train keeps its pretrained statistics too."""
    for m in model.modules():
        if isinstance(m, BATCHNORMS) and m.weight is not None and not m.weight.requires_grad:
            m.eval()


def normalise(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 (or 0..255 float) images [B, 3, H, W] -> float: x / 255, then (x - mean) / std
    per channel when the data state has them (a pretrained trunk's), else x / 255 alone."""
    x = images.float() / 255  # not in place: a float input is the caller's tensor
    if mean:
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x = (x - m) / s
    return x
