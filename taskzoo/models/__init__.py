"""The model zoo: keyword-only builders registered by name.

>>> from taskzoo.models import MODELS, build
>>> net = build("bilstm", vocab_size=100, num_classes=2)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from taskzoo.registry import Registry

MODELS: Registry[Any] = Registry("model")

# Families register themselves on import; list them here so every name is known up front.
_FAMILIES = ("rnn", "textcnn", "tagger", "policy", "cnn", "autoencoder", "fastestdet", "csp",
             "yolo", "captioner", "transformer", "extractive", "efficientnet_lite",
             "face_resnet", "mtcnn", "ultraface", "face_pipeline", "style_net")


def _load_all() -> None:
    for family in _FAMILIES:
        importlib.import_module(f"taskzoo.models.{family}")


def build(name: str, **kwargs: Any) -> Any:
    """Build model `name`, passing the kwargs its builder accepts.

    A task offers every architecture field of its config; each builder takes the ones it
    declares (an RNN ignores `kernel_sizes`, TextCNN ignores `hidden_dim`)."""
    _load_all()
    builder = MODELS.get(name)
    accepted = inspect.signature(builder).parameters
    used = {k: v for k, v in kwargs.items() if k in accepted}
    net = builder(**used)
    # what a weights card records: the canonical name and exactly the kwargs it was built with
    net.zoo_spec = (MODELS.canonical(name), used)
    return net


def names(pattern: str = "*") -> list[str]:
    _load_all()
    return MODELS.names(pattern)
