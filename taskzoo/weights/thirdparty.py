"""Third-party weights, read once to be released as safetensors: pinned files through the
verified hub, unpickled only by `torch.load(weights_only=True)` (tensors and plain
containers, never code).

    >>> from taskzoo.weights.thirdparty import fastestdet_coco_state
    >>> state = fastestdet_coco_state()          # doctest: +SKIP
    >>> len(state)                               # doctest: +SKIP
    420

`benchmarks/release_fastestdet.py` turns the COCO weights into the released
`fastestdet.coco` (safetensors and a card naming source, license and the figures measured
here); users load that, not these files.
"""

from __future__ import annotations

from typing import Any

from taskzoo import hub
from taskzoo.errors import CheckpointError

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


def _read(f: hub.RemoteFile) -> dict[str, Any]:
    import torch

    path = hub.fetch(f, group=GROUP)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pinned file that does not unpickle safely is not weights
        raise CheckpointError(f"{path}: not a plain tensor state dict ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return dict(state)


def fastestdet_coco_state() -> dict[str, Any]:
    """The published FastestDet COCO weights (80 classes, AP50 0.253 on val2017), upstream
    key names, which are `models.fastestdet`'s."""
    return _read(FASTESTDET_COCO)


def shufflenetv2_state() -> dict[str, Any]:
    """FastestDet's ShuffleNetV2 backbone weights (`FastestDet.backbone`'s keys)."""
    return _read(SHUFFLENETV2)
