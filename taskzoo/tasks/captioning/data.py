"""The captioning task's data: its bundle (CaptionData) of splits as decoded images and
caption ids, the training source (which serves a frozen encoder's cached maps instead of
images), and the encoder's starting weights from another task (`encoder_init=`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from taskzoo.data.captions import CaptionVocab, caption_vocab, caption_words
from taskzoo.data.loader import LoaderSource
from taskzoo.errors import CheckpointError, ConfigError, DataError, UnknownNameError, did_you_mean
from taskzoo.tasks.base import DataBundle
from taskzoo.tasks.common.transfer import load_part
from taskzoo.train.types import TrainState
from taskzoo.weights import SpecRules, cards, resolve_spec

FLICKR8K_LICENSE = ("Flickr8k: research use only (Hodosh, Young, Hockenmaier 2013); images "
                    "are Flickr photos under their owners' copyright")


@dataclass
class CaptionData(DataBundle):
    vocab: CaptionVocab | None = None  # the training captions' words
    images: dict[str, np.ndarray] = field(default_factory=dict)  # split -> uint8 [N, H, W, 3]
    references: dict[str, list[list[str]]] = field(default_factory=dict)  # split -> captions
    names: dict[str, list[str]] = field(default_factory=dict)  # split -> image names
    size: int = 128  # stored image side (inputs are resized to it, as the data was)
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # the encoder's input
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # normalisation
    name: str = ""  # what the data is, for a weights card
    files: list[Any] = field(default_factory=list)  # pinned files, for a weights card
    license: str = ""  # the data's terms
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)  # the encoder's builder kwargs


def _decode(paths: Sequence[Path]) -> np.ndarray:
    """RGB uint8 [N, H, W, 3] of same-sized image files (PIL decodes outside the GIL)."""
    from PIL import Image

    def one(p: Path) -> np.ndarray:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))

    with ThreadPoolExecutor(4) as pool:
        return np.stack(list(pool.map(one, paths)))


def _splits(cfg: Any) -> tuple[dict[str, tuple[np.ndarray, list[list[str]], list[str]]], str,
                                list[Any], str, int]:
    """{split: (images, captions per image, names)}, a name, pinned files, license, side."""
    if cfg.dataset == "flickr8k":
        from taskzoo.data.flickr8k import FLICKR8K_COUNTS, IMAGE_SIZE, load_flickr8k

        out = {}
        for split in FLICKR8K_COUNTS:
            s = load_flickr8k(split)
            out[split] = (_decode(s.images.paths or []), s.captions, s.names)
        return (out, "Flickr8k (128x128; standard 6,000 / 1,000 / 1,000 split)", [],
                FLICKR8K_LICENSE, IMAGE_SIZE[0])
    if cfg.dataset == "shapes":
        from taskzoo.data.caption_shapes import caption_shapes

        data = caption_shapes(240, seed=cfg.seed)
        cut = {"train": range(0, 160), "dev": range(160, 200), "test": range(200, 240)}
        out = {k: (np.stack([data.arrays[i] for i in r]), [data.captions[i] for i in r],
                   [f"shape_{i}" for i in r]) for k, r in cut.items()}
        return out, data.name, [], "generated here (public domain)", data.arrays[0].shape[0]
    if not cfg.data:
        raise DataError("dataset=folder needs data=PATH: a folder (or zip) holding the "
                        "original Flickr8k images and its Flickr8k_text files")
    from taskzoo.data.flickr8k import IMAGE_SIZE, load_flickr8k_original

    found = load_flickr8k_original(Path(cfg.data).expanduser())
    return ({k: (v.images.arrays, v.captions, v.names) for k, v in found.items()},
            f"your Flickr8k copy in {cfg.data} (resized to 128x128 here)", [],
            FLICKR8K_LICENSE, IMAGE_SIZE[0])


def load_caption_data(cfg: Any, state: dict[str, Any] | None) -> CaptionData:
    """The task's CaptionData: decoded images per split, the vocabulary (the state's when
    fine-tuning from released weights, else the training captions' at `min_count`), the
    training examples as (image index, caption ids) pairs, one per caption."""
    splits, name, files, license_, side = _splits(cfg)
    words = [[caption_words(c) for c in caps] for caps in splits["train"][1]]
    vocab = (CaptionVocab.from_list(state["vocab"]) if state and state.get("vocab")
             else caption_vocab([w for ws in words for w in ws], min_count=cfg.min_count))
    # one training example per image, with all its captions: they share one encoding
    examples = [(i, [np.asarray(vocab.encode_caption(w, max_len=cfg.max_len), np.int64)
                     for w in ws if w]) for i, ws in enumerate(words)]
    examples = [e for e in examples if e[1]]
    if not examples:
        raise DataError(f"{name}: the training images have no captions with words")
    return CaptionData(
        train=examples, splits={k: v[2] for k, v in splits.items() if k != "train"},
        vocab=vocab, images={k: v[0] for k, v in splits.items()},
        references={k: v[1] for k, v in splits.items()},
        names={k: v[2] for k, v in splits.items()}, size=side,
        mean=list((state or {}).get("mean", [0.0] * 3)),
        std=list((state or {}).get("std", [1.0] * 3)),
        encoder_kwargs=dict((state or {}).get("encoder_kwargs") or {}),
        name=name, files=files, license=license_)


def caption_collate(examples: list[tuple[int, list[np.ndarray]]]) -> dict[str, torch.Tensor]:
    """{"index": image indices [B], "captions": every caption of those images as ids [N, T]
    padded with 0, "owner": [N] the batch position of each caption's image}."""
    caps = [ids for _, all_ids in examples for ids in all_ids]
    out = torch.zeros(len(caps), max(len(c) for c in caps), dtype=torch.long)
    for row, ids in enumerate(caps):
        out[row, :len(ids)] = torch.from_numpy(ids)
    owner = torch.tensor([b for b, (_, all_ids) in enumerate(examples) for _ in all_ids])
    return {"index": torch.tensor([i for i, _ in examples]), "captions": out, "owner": owner}


class CaptionSource(LoaderSource):
    """Batches of images with all their captions. During the encoder's frozen epochs a batch carries
    the encoder's maps of its images ("maps", computed once at setup) instead of the images:
    the encoder would give the same maps every epoch, and they are the costly part."""

    def __init__(self, dataset: Sequence[Any], *, images: np.ndarray, frozen_epochs: int,
                 encode: Callable[[nn.Module, np.ndarray], torch.Tensor], **kw: Any) -> None:
        super().__init__(dataset, **kw)
        self.images, self.frozen_epochs, self.encode = images, frozen_epochs, encode
        self.maps: torch.Tensor | None = None

    def frozen(self, epoch: int) -> bool:
        return self.frozen_epochs < 0 or epoch < self.frozen_epochs

    def setup(self, model: nn.Module, runtime: Any) -> None:
        super().setup(model, runtime)
        if self.frozen_epochs != 0:
            self.maps = self.encode(model, self.images)

    def batches(self, state: TrainState) -> Iterator[Any]:
        frozen = self.frozen(state.epoch) and self.maps is not None
        for batch in super().batches(state):
            if frozen:
                batch["maps"] = self.maps[batch["index"]]
            else:
                batch["images"] = torch.from_numpy(
                    self.images[batch["index"].numpy()]).permute(0, 3, 1, 2)
            yield batch


# ---------------------------------------------------------------- encoder_init
def _no_encoder(spec: str, task: str | None) -> Exception:
    names = sorted(c.name for c in cards())
    return UnknownNameError(f"encoder_init={spec!r}: not a released weights name, a run "
                            f"directory or a .safetensors with its .json card."
                            f"{did_you_mean(spec, names)} Released: {', '.join(names)}.")


def _not_its_card(spec: str, path: Path) -> Exception:
    return CheckpointError(f"encoder_init={spec}: the file does not match its card's sha256")


# weights of any task: only the network they hold matters
ENCODER_INIT = SpecRules(option="encoder_init", run_dirs=True, missing=_no_encoder,
                         mismatch=_not_its_card)


def encoder_source(spec: str, encoder: str) -> tuple[dict[str, Any], dict[str, torch.Tensor],
                                                    dict[str, Any]]:
    """(the builder's kwargs, the tensors, the data state) of `encoder_init=`: a released
    name, a finished run directory of any task, or a .safetensors with its card beside it;
    the network they hold must be `encoder`. The data state holds the input normalisation
    (mean, std) the encoder was trained with, when it had one."""
    source = resolve_spec(spec, task=None, rules=ENCODER_INIT)
    if source.card is not None:
        arch, kwargs, tensors = source.card.arch, source.card.arch_kwargs, source.tensors()
    else:  # a run directory: its config rebuilds the network, which names its builder
        net = source.restore(device="cpu").model
        arch, kwargs = net.zoo_spec
        tensors = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if arch != encoder:
        raise ConfigError(f"encoder_init={spec}: those weights are a {arch}, but "
                          f"encoder={encoder}; set encoder={arch}")
    if int(kwargs.get("in_channels", 3)) != 3:
        raise ConfigError(f"encoder_init={spec}: that {arch} reads {kwargs['in_channels']}-"
                          f"channel images; captioning needs an RGB encoder")
    kwargs = {k: v for k, v in kwargs.items() if k not in ("num_classes", "in_channels")}
    return kwargs, tensors, source.data


def load_encoder(encoder: nn.Module, tensors: dict[str, torch.Tensor], spec: str) -> list[str]:
    """Fill `encoder` from `encoder_init`'s tensors; returns the names of the other network's
    extra tensors (a classifier, a detection head), which are ignored."""
    return load_part(encoder, tensors, option="encoder_init", spec=spec, what="encoder")


__all__ = ["CaptionData", "CaptionSource", "caption_collate", "encoder_source",
           "load_caption_data", "load_encoder"]
