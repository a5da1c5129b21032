"""Images as training examples: decoding and resizing (deterministic), augmentation with
torchvision.transforms.v2 (random, drawn from the per-sample generator the loader seeds),
normalisation, and turning a user's inputs (paths, globs, folders, PIL images, arrays) into
the tensors a model was trained on.

An example is `(uint8 tensor [C, H, W], label)`. Transforms see a `tv_tensors.Image`, so
the same pipeline carries boxes (`tv_tensors.BoundingBoxes`) for detection later.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskzoo.errors import ConfigError, InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                    ".ppm", ".pnm")
AUGMENTS = ("none", "crop", "crop_flip", "faces", "resized_crop_flip", "resized_crop_flip_ta")


def to_tensor(image: Any, channels: int, size: tuple[int, int] | None) -> torch.Tensor:
    """A PIL image, or an array [H, W] / [H, W, C] (uint8, or floats in [0, 1]), or a tensor
    [C, H, W], as a uint8 tensor [channels, H, W] resized to `size` (bilinear, antialiased)."""
    from PIL import Image

    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3:
            raise InputError(f"an image tensor must be [C, H, W] or [H, W], got {list(t.shape)}")
        if t.is_floating_point():
            t = (t.clamp(0, 1) * 255).round()
        image = t.to(torch.uint8).permute(1, 2, 0).numpy()
        image = image[..., 0] if image.shape[2] == 1 else image
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype,
                                                                                 np.integer):
                raise InputError(f"an image array must hold numbers, got {arr.dtype}")
            if np.issubdtype(arr.dtype, np.floating):
                arr = np.clip(arr, 0, 1) * 255  # floats are read as [0, 1]
            arr = np.clip(arr, 0, 255).round().astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise InputError(f"an image array must be [H, W] or [H, W, 3], got {list(arr.shape)}")
        image = Image.fromarray(arr)
    if not isinstance(image, Image.Image):
        raise InputError(f"expected an image (path, PIL image, array or tensor), got "
                         f"{type(image).__name__}")
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(image, dtype=np.uint8)
    t = torch.from_numpy(arr.copy())
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def stratified_split(labels: np.ndarray, fraction: float,
                     seed: int) -> tuple[list[int], list[int]]:
    """Indices (kept, held out): `fraction` of each class held out, seeded."""
    if fraction <= 0:
        return list(range(len(labels))), []
    from sklearn.model_selection import train_test_split

    kept, held = train_test_split(np.arange(len(labels)), test_size=fraction, random_state=seed,
                                  stratify=labels)
    return sorted(kept.tolist()), sorted(held.tolist())


def random_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (kept, held out) of n unlabelled items, `fraction` held out, seeded."""
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, round(n * fraction)) if n > 2 else 0
    return sorted(perm[k:].tolist()), sorted(perm[:k].tolist())


def open_input(item: Any, index: int) -> Any:
    """A predictor's input as an image: a path is read (`read_image`'s conversions), other
    inputs pass through for `to_tensor`. InputError naming the input's position."""
    if not isinstance(item, (str, os.PathLike)):
        return item
    from taskzoo.data.image_files import read_image
    from taskzoo.errors import DataError

    path = Path(item).expanduser()
    if not path.is_file():
        raise InputError(f"image {index}: no such file {str(item)!r}")
    try:
        return read_image(path)
    except DataError as exc:
        raise InputError(f"image {index}: {exc}") from None


class ImageExamples(torch.utils.data.Dataset):
    """`(uint8 [C, H, W], label)` for each image of an ImageSet (taskzoo.data.images): arrays
    are sliced, files are decoded (in the loader's worker processes) and resized."""

    def __init__(self, images: Any, *, channels: int, size: tuple[int, int] | None,
                 index: Sequence[int] | None = None) -> None:
        self.images, self.channels, self.size = images, channels, size
        self.index = list(range(len(images))) if index is None else list(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = self.index[i]
        label = int(self.images.labels[j])
        arrays = getattr(self.images, "arrays", None)
        if arrays is not None:
            arr = arrays[j]
            if self.size is None or tuple(arr.shape[:2]) == tuple(self.size):
                t = torch.from_numpy(np.ascontiguousarray(arr))
                t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
                if t.shape[0] == self.channels:
                    return t, label
            return to_tensor(arr, self.channels, self.size), label
        return to_tensor(self.images.image(j), self.channels, self.size), label

    def labels(self) -> np.ndarray:
        return np.asarray(self.images.labels)[self.index]


def decoded_bytes(examples: ImageExamples) -> int:
    """Bytes the examples take decoded at their fixed size (0 when they are arrays already
    or keep each image's own size)."""
    if getattr(examples.images, "arrays", None) is not None or examples.size is None:
        return 0
    return len(examples) * examples.channels * examples.size[0] * examples.size[1]


def decode_once(examples: ImageExamples, *, workers: int = 0,
                desc: str = "decoding") -> ImageExamples:
    """The same examples, decoded and resized once into memory: each epoch then crops and
    augments arrays instead of decoding every file again (flowers, 750 photos at 224 px:
    113 MB). Arrays, and examples without a fixed size, come back as they are.

    >>> from taskzoo.data.images import ImageSet
    >>> s = ImageSet(labels=np.array([0, 1]), classes=["a", "b"],
    ...              arrays=np.zeros((2, 4, 4), np.uint8))
    >>> decode_once(ImageExamples(s, channels=1, size=(4, 4))).images is s
    True
    """
    if not decoded_bytes(examples):
        return examples
    import sys

    from tqdm import tqdm

    from taskzoo.data.images import ImageSet
    from taskzoo.data.loader import eval_batches

    h, w = examples.size
    c = examples.channels
    arrays = np.empty((len(examples), h, w, c) if c == 3 else (len(examples), h, w), np.uint8)
    show = bool(sys.stderr and sys.stderr.isatty()) and len(examples) >= 2000

    def stack(batch: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
        return torch.stack([b[0] for b in batch])

    with tqdm(total=len(examples), desc=desc, unit="image", disable=not show,
              leave=False) as bar:
        for idx, images in eval_batches(examples, batch_size=64, collate=stack,
                                        workers=workers):
            got = images.permute(0, 2, 3, 1).numpy()
            arrays[idx] = got if c == 3 else got[..., 0]
            bar.update(len(idx))
    held = ImageSet(labels=examples.labels(), classes=list(examples.images.classes),
                    arrays=arrays, channels=c)
    return ImageExamples(held, channels=c, size=examples.size)


class OnImage:
    """Apply a transform to the image of an `(image, label)` example (picklable for workers
    that are spawned rather than forked)."""

    def __init__(self, transform: Callable[[Any], Any]) -> None:
        self.transform = transform

    def __call__(self, example: tuple[torch.Tensor, int]) -> tuple[torch.Tensor, int]:
        from torchvision import tv_tensors

        image, label = example
        return self.transform(tv_tensors.Image(image)).as_subclass(torch.Tensor), label


def normalize(mean: Sequence[float], std: Sequence[float]) -> Any:
    """uint8 [C, H, W] (or a batch) -> float32 scaled to [0, 1], minus mean, over std."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


def train_transform(augment: str, size: tuple[int, int], *, padding: int = 4) -> OnImage | None:
    """Augmentation by name, on uint8 images (normalisation happens per batch, in
    `ImageCollate`). `crop`: random crops of the image padded by `padding` pixels (shifts);
    `crop_flip`: and mirror images; `faces`: mirror images and small rotations, shifts and
    zooms (a face is a face a few degrees turned); `resized_crop_flip`: a random part of 25 to
    100 % of the image at aspect 3:4 to 4:3, resized back, and mirrored (the ImageNet recipe,
    for photos); `resized_crop_flip_ta`: and then one random photometric or geometric change
    of random strength (TrivialAugment, Mueller & Hutter 2021); `none`: nothing (None)."""
    from torchvision.transforms import v2

    if augment not in AUGMENTS:
        raise ConfigError(f"augment={augment!r}: expected one of {', '.join(AUGMENTS)}")
    steps: list[Any] = []
    if augment in ("crop", "crop_flip") and padding > 0:
        steps.append(v2.RandomCrop(list(size), padding=padding))
    photos = augment in ("resized_crop_flip", "resized_crop_flip_ta")
    if photos:
        steps.append(v2.RandomResizedCrop(list(size), scale=(0.25, 1.0), antialias=True))
    if augment in ("crop_flip", "faces") or photos:
        steps.append(v2.RandomHorizontalFlip())
    if augment == "resized_crop_flip_ta":
        steps.append(v2.TrivialAugmentWide())
    if augment == "faces":
        steps.append(v2.RandomAffine(degrees=8, translate=(0.06, 0.06), scale=(0.92, 1.08)))
    return OnImage(v2.Compose(steps)) if steps else None


class ImageCollate:
    """(uint8 image, label) examples -> (float32 [B, C, H, W] normalised, int64 [B]): one
    vectorised normalisation per batch instead of one per image."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([b[0] for b in batch]).float().div_(255)
        return images.sub_(self.mean).div_(self.std), torch.tensor([b[1] for b in batch])


def channel_stats(examples: ImageExamples, *, limit: int = 2000,
                  seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the pixels in [0, 1], over at most `limit` examples (a
    seeded sample: decoding a large folder of photos twice is not worth a rounding digit)."""
    n = len(examples)
    idx = range(n) if n <= limit else np.random.default_rng(seed).choice(n, limit, replace=False)
    total = sq = None
    count = 0
    for i in idx:
        x = examples[int(i)][0].double().div_(255).flatten(1)
        total = x.sum(1) if total is None else total + x.sum(1)
        sq = (x * x).sum(1) if sq is None else sq + (x * x).sum(1)
        count += x.shape[1]
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std]


def expand_image_args(args: Sequence[str]) -> list[Path]:
    """Command-line image arguments as files: a path, a glob (`photos/*.jpg`) or a folder
    (its images, sorted). InputError naming the argument that matches no image."""
    out: list[Path] = []
    for arg in args:
        try:
            out.extend(_expand_image_arg(arg))
        except OSError as exc:  # a name too long for a path (text given to an image task)
            raise InputError(f"{_shown(arg)}: not a usable path ({exc.strerror or exc}); "
                             "expected an image path, a glob or a folder") from None
    return out


def _shown(arg: str) -> str:
    """`arg` cut to a readable length for a one-line message."""
    return arg if len(arg) <= 80 else f"{arg[:77]}..."


def _expand_image_arg(arg: str) -> list[Path]:
    path = Path(arg).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not p.name.startswith("."))
        if not found:
            raise InputError(f"{arg}: a folder with no images ({', '.join(IMAGE_EXTENSIONS)})")
        return found
    if any(c in arg for c in "*?[") and not path.exists():
        found = sorted(Path(p) for p in glob.glob(os.path.expanduser(arg), recursive=True)
                       if Path(p).is_file())
        if not found:
            raise InputError(f"{_shown(arg)}: the pattern matches no file")
        return found
    if path.is_file():
        return [path]
    raise InputError(f"{_shown(arg)}: no such file (expected an image path, a glob or a folder)")
