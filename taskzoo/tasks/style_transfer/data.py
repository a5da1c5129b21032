"""The style task's data: content photos decoded once into memory (training crops, and the
dev and test photos at the size they are scored at) and the painting at its style size."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskzoo.errors import DataError
from taskzoo.tasks.base import DataBundle

FLICKR8K_LICENSE = ("Flickr8k: research use only (Hodosh, Young, Hockenmaier 2013); images "
                    "are Flickr photos under their owners' copyright")


@dataclass
class StyleData(DataBundle):
    style: str = "starry_night"  # the painting's name or path, as the config gave it
    painting: torch.Tensor | None = None  # [1, 3, h, w] in [0, 1] at the style size
    name: str = ""  # what the photos are, for a weights card
    license: str = ""  # the photos' terms


def square(image: Any, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3]: the shorter side resized to `size`, the centre cut out
    (Flickr8k's 128-px squares come through unchanged at 128)."""
    from PIL import Image

    im = image.convert("RGB")
    scale = size / min(im.size)
    w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
    if (w, h) != im.size:
        im = im.resize((w, h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def _decode(images: Any, index: Sequence[int], size: int) -> np.ndarray:
    """uint8 [N, size, size, 3] of an ImageSet's images at `index` (threads: PIL decodes and
    resizes outside the GIL)."""
    arrays = getattr(images, "arrays", None)

    def one(j: int) -> np.ndarray:
        from PIL import Image

        if arrays is not None:
            return square(Image.fromarray(np.asarray(arrays[j])), size)
        return square(images.image(j), size)

    with ThreadPoolExecutor(4) as pool:
        return np.stack(list(pool.map(one, index)))


class PhotoSet(torch.utils.data.Dataset):
    """uint8 photos [N, S, S, 3] as float tensors [3, S, S] in [0, 1]."""

    def __init__(self, arrays: np.ndarray) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.arrays[i]).permute(2, 0, 1).float().div_(255)


class RandomFlip:
    """A training photo mirrored left to right half the time (the loader's seeded RNG)."""

    def __call__(self, photo: torch.Tensor) -> torch.Tensor:
        return photo.flip(-1) if torch.rand(()) < 0.5 else photo


def painting_tensor(style: str, size: int) -> torch.Tensor:
    """The painting as [1, 3, h, w] in [0, 1], its long side `size` px."""
    from PIL import Image

    from taskzoo.tasks.style_transfer.paintings import painting_image

    im = painting_image(style)
    scale = size / max(im.size)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                   Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float().div_(255)


def _sources(cfg: Any) -> tuple[dict[str, tuple[Any, list[int]]], str, str]:
    """{split: (ImageSet, indices)}, a name and the photos' license."""
    if cfg.dataset == "flickr8k":
        from taskzoo.data.flickr8k import load_flickr8k

        parts = {k: load_flickr8k(k).images for k in ("train", "dev", "test")}
        limits = {"train": None, "dev": cfg.dev_photos, "test": cfg.eval_photos}
        return ({k: (v, list(range(len(v)))[:limits[k]]) for k, v in parts.items()},
                "Flickr8k training photos (128x128)", FLICKR8K_LICENSE)
    if cfg.dataset == "shapes":
        from taskzoo.data.caption_shapes import caption_shapes
        from taskzoo.data.images import ImageSet

        shapes = caption_shapes(64, seed=cfg.seed)
        arrays = np.stack(shapes.arrays)
        images = ImageSet(arrays=arrays, labels=np.zeros(len(arrays), np.int64), channels=3,
                          classes=["image"])
        cut = {"train": range(0, 48), "dev": range(48, 56), "test": range(56, 64)}
        limits = {"train": None, "dev": cfg.dev_photos, "test": cfg.eval_photos}
        return ({k: (images, list(r)[:limits[k]]) for k, r in cut.items()},
                "generated shapes (64 px)", "generated here (public domain)")
    if not cfg.data:
        raise DataError("dataset=folder needs data=PATH: a folder (or zip) of your photos")
    from taskzoo.data import vision
    from taskzoo.data.image_files import load_image_files

    found = load_image_files(Path(cfg.data).expanduser())
    if len(found) < 3:
        raise DataError(f"data={cfg.data}: {len(found)} readable images; the run needs at "
                        "least 3 (training, dev and test photos)")
    rest, test = vision.random_split(len(found), 0.1, cfg.seed)
    kept, dev = vision.random_split(len(rest), 0.1, cfg.seed + 1)
    return ({"train": (found, [rest[i] for i in kept]),
             "dev": (found, [rest[i] for i in dev][:cfg.dev_photos]),
             "test": (found, test[:cfg.eval_photos])}, f"your photos in {cfg.data}",
            "the user's own photos")


def load_style_data(cfg: Any) -> StyleData:
    """Training photos at `image_size`, dev and test photos at `eval_size`, the painting."""
    sources, name, license_ = _sources(cfg)
    images, index = sources["train"]
    train = PhotoSet(_decode(images, index, cfg.image_size))
    splits = {k: PhotoSet(_decode(s, idx, cfg.eval_size))
              for k, (s, idx) in sources.items() if k != "train" and idx}
    return StyleData(train=train, splits=splits, labels=["image"], style=cfg.style,
                     painting=painting_tensor(cfg.style, cfg.style_size), name=name,
                     license=license_)
