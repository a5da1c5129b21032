"""Detection examples for the loader: decoding, augmentation with transforms.v2 on
`tv_tensors.BoundingBoxes`, resizing to the network's square (stretched, as FastestDet was
trained, or letterboxed), a hand-written mosaic, collation, and the tiny offline dataset.

An example is `(uint8 image [3, S, S], target)`; the target holds "boxes" (xyxy pixels of
the resized image), "labels" (int64) and "scale" ((sx, sy): resized = original * scale),
so predictions map back to the original pixels by dividing by it. Evaluation targets keep
the boxes of the original image instead ("orig_boxes").

Random draws come from torch's default generator, which the loader seeds per (seed, epoch,
index): the pixels of a sample do not depend on workers or resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from taskzoo.errors import ConfigError

# torchvision is imported inside the functions: `taskzoo list` imports every task module
# and stays free of heavy libraries (tests/test_packaging.py)

RESIZES = ("stretch", "letterbox")
AUGMENTS = ("none", "light", "full")
PAD_FILL = 114  # the grey of YOLO letterboxes and zoom-outs


def resize_example(image: torch.Tensor, boxes: torch.Tensor, size: int,
                   mode: str) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
    """Resize to `size` x `size`: "stretch" scales each axis (no antialias, as OpenCV's
    INTER_LINEAR that FastestDet was trained with); "letterbox" keeps the aspect ratio and
    pads right and bottom with grey, so boxes only scale. Returns (image, boxes, (sx, sy))."""
    from torchvision.transforms.v2 import functional as TF

    h, w = image.shape[-2:]
    if mode == "stretch":
        sx, sy = size / w, size / h
        out = TF.resize(image, [size, size], antialias=False)
    elif mode == "letterbox":
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        sx, sy = nw / w, nh / h
        out = TF.resize(image, [nh, nw], antialias=True)
        out = TF.pad(out, [0, 0, size - nw, size - nh], fill=PAD_FILL)
    else:
        raise ConfigError(f"resize={mode!r}: expected one of {', '.join(RESIZES)}")
    return out, boxes * boxes.new_tensor([sx, sy, sx, sy]), (sx, sy)


class DetectionExamples(torch.utils.data.Dataset):
    """`(uint8 [3, H, W] tv_tensors.Image, {"boxes": BoundingBoxes, "labels"})` at the image's
    own size, for a dataset with `image(i)`, `boxes[i]`, `labels[i]` (DetectionSet,
    ShapesSet); `index` selects a split and `label_map` renames class ids (a dataset's
    classes inside a model's larger label set)."""

    def __init__(self, data: Any, index: Sequence[int] | None = None,
                 label_map: Sequence[int] | None = None,
                 cache: dict[int, torch.Tensor] | None = None) -> None:
        self.data = data
        self.index = list(range(len(data))) if index is None else list(index)
        self.label_map = None if label_map is None else torch.as_tensor(label_map)
        self.cache = cache  # decoded images by dataset index (`decode_all`), shared by splits

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as TF

        j = self.index[i]
        if self.cache is not None and j in self.cache:
            pic = self.cache[j]
        else:
            pic = TF.pil_to_tensor(self.data.image(j).convert("RGB"))
        h, w = pic.shape[-2:]
        labels = torch.as_tensor(np.asarray(self.data.labels[j]), dtype=torch.int64)
        if self.label_map is not None:
            labels = self.label_map[labels]
        boxes = tv_tensors.BoundingBoxes(torch.as_tensor(np.asarray(self.data.boxes[j]),
                                                         dtype=torch.float32).reshape(-1, 4),
                                         format="XYXY", canvas_size=(h, w))
        return tv_tensors.Image(pic), {"boxes": boxes, "labels": labels}

    def num_boxes(self, i: int) -> int:
        return len(self.data.boxes[self.index[i]])


CACHE_BYTES = 1 << 30  # decode a dataset once into memory when its pixels fit in this


def decode_all(data: Any, indices: Sequence[int]) -> dict[int, torch.Tensor] | None:
    """Every image of `indices` decoded once (uint8 [3, H, W]), or None when they would take
    more than CACHE_BYTES. Decoding a PNG costs more than augmenting it at 352 px, and a
    mosaic decodes four: small datasets (PennFudan 69 MB, coco128 118 MB) are decoded at
    the start, and loader workers share the memory (fork, copy-on-write)."""
    from torchvision.transforms.v2 import functional as TF

    sizes = getattr(data, "sizes", None)
    if sizes is None or sum(sizes[j][0] * sizes[j][1] * 3 for j in indices) > CACHE_BYTES:
        return None
    return {j: TF.pil_to_tensor(data.image(j).convert("RGB")) for j in sorted(set(indices))}


class Mosaic:
    """Four training images in a 2x2 grid around a random centre (YOLOv4's mosaic), with
    probability `p`; the three partners are drawn from the same seeded generator. No
    transforms.v2 op combines several samples with their boxes, hence this one."""

    def __init__(self, examples: DetectionExamples, size: int, p: float = 0.5) -> None:
        self.examples, self.size, self.p = examples, size, p

    def __call__(self, example: tuple[Any, dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
        from torchvision import tv_tensors

        if self.p <= 0 or float(torch.rand(())) >= self.p:
            return example
        s = self.size
        cx, cy = (int(v) for v in torch.randint(s // 2, s * 3 // 2, (2,)))
        others = torch.randint(len(self.examples), (3,)).tolist()
        parts = [example] + [self.examples[k] for k in others]
        canvas = torch.full((3, 2 * s, 2 * s), PAD_FILL, dtype=torch.uint8)
        boxes, labels = [], []
        for q, (img, tgt) in enumerate(parts):
            img, bx, _ = resize_example(img.as_subclass(torch.Tensor),
                                        tgt["boxes"].as_subclass(torch.Tensor), s, "letterbox")
            h, w = int(round(img.shape[1])), int(round(img.shape[2]))
            # quadrant q: top-left, top-right, bottom-left, bottom-right of (cx, cy)
            x0 = cx - w if q in (0, 2) else cx
            y0 = cy - h if q in (0, 1) else cy
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + w, 2 * s), min(y0 + h, 2 * s)
            canvas[:, cy0:cy1, cx0:cx1] = img[:, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            boxes.append(bx + bx.new_tensor([x0, y0, x0, y0]))
            labels.append(tgt["labels"])
        # the s x s window in the middle of the canvas (it holds the centre), as YOLOv5 does
        o = s // 2
        bx = (torch.cat(boxes) - o).clamp(0, s)
        lab = torch.cat(labels)
        keep = ((bx[:, 2] - bx[:, 0]) >= 2) & ((bx[:, 3] - bx[:, 1]) >= 2)
        bb = tv_tensors.BoundingBoxes(bx[keep], format="XYXY", canvas_size=(s, s))
        return tv_tensors.Image(canvas[:, o:o + s, o:o + s].clone()), {"boxes": bb,
                                                                      "labels": lab[keep]}


class TrainTransform:
    """Mosaic (optional), resize to the square, then scale/shift jitter, flip and colour on
    the small image (4-10x fewer pixels than the originals), and drop degenerate boxes.

    Colour is brightness, contrast and saturation: a hue shift costs ~0.1 s per image on a
    CPU core, more than the network's step per image."""

    def __init__(self, *, size: int, resize: str, augment: str, mosaic: float = 0.0,
                 examples: DetectionExamples | None = None, flip: bool = True) -> None:
        if augment not in AUGMENTS:
            raise ConfigError(f"augment={augment!r}: expected one of {', '.join(AUGMENTS)}")
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        self.size, self.resize = size, resize
        self.mosaic = Mosaic(examples, size, mosaic) if mosaic > 0 and examples else None
        ops: list[Any] = []
        if augment != "none":
            strong = augment == "full"
            # scale jitter with shifts: FastestDet crops 75-100% or zooms out to 125%
            ops.append(v2.RandomAffine(degrees=0, translate=(0.1, 0.1) if strong else (0.05, 0.05),
                                       scale=(0.75, 1.25) if strong else (0.9, 1.1),
                                       interpolation=v2.InterpolationMode.BILINEAR,
                                       fill={tv_tensors.Image: PAD_FILL, "others": 0}))
            if flip:
                ops.append(v2.RandomHorizontalFlip())
            ops.append(v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3,
                                                      saturation=0.5)], p=0.8 if strong else 0.4))
        self.ops = v2.Compose(ops + [v2.ClampBoundingBoxes(),
                                     v2.SanitizeBoundingBoxes(min_size=2.0)]) if ops else None

    def __call__(self, example: tuple[Any, dict[str, Any]]) -> tuple[torch.Tensor, dict[str, Any]]:
        from torchvision import tv_tensors

        if self.mosaic is not None:
            example = self.mosaic(example)
        image, target = example
        img, boxes, scale = resize_example(image.as_subclass(torch.Tensor),
                                           target["boxes"].as_subclass(torch.Tensor),
                                           self.size, self.resize)
        labels = target["labels"]
        if self.ops is not None:
            bb = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(self.size, self.size))
            img, out = self.ops(tv_tensors.Image(img), {"boxes": bb, "labels": labels})
            img, boxes, labels = (img.as_subclass(torch.Tensor),
                                  out["boxes"].as_subclass(torch.Tensor), out["labels"])
        boxes = boxes.clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, self.size)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, self.size)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
        return img, {"boxes": boxes[keep], "labels": labels[keep], "scale": scale}


class EvalTransform:
    """Resize only; the original boxes travel along for scoring in the original pixels."""

    def __init__(self, *, size: int, resize: str) -> None:
        self.size, self.resize = size, resize

    def __call__(self, example: tuple[Any, dict[str, Any]]) -> tuple[torch.Tensor, dict[str, Any]]:
        image, target = example
        orig = target["boxes"].as_subclass(torch.Tensor)
        img, boxes, scale = resize_example(image.as_subclass(torch.Tensor), orig, self.size,
                                           self.resize)
        return img, {"boxes": boxes, "labels": target["labels"], "scale": scale,
                     "orig_boxes": orig, "orig_size": tuple(image.shape[-2:])}


def collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[torch.Tensor, list[dict]]:
    """(uint8 images [B, 3, S, S], targets): pixels go to the device as bytes, 4x fewer than
    floats, and become floats there."""
    return torch.stack([img for img, _ in batch]), [t for _, t in batch]


# ---------------------------------------------------------------- the tiny offline dataset
SHAPES_CLASSES = ["square", "disc", "bar"]


class ShapesSet:
    """Coloured squares, discs and bars on noisy backgrounds, 96x128, drawn from a seed: the
    offline dataset of tests and `taskzoo bench --quick` (not a benchmark)."""

    def __init__(self, n: int = 96, *, seed: int = 0, size: tuple[int, int] = (96, 128)) -> None:
        rng = np.random.default_rng(seed)
        h, w = size
        self.classes = list(SHAPES_CLASSES)
        self.name = f"synthetic shapes ({n} images, 3 classes)"
        self.arrays, self.boxes, self.labels = [], [], []
        yy, xx = np.mgrid[0:h, 0:w]
        for _ in range(n):
            img = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
            boxes, labels = [], []
            for _ in range(int(rng.integers(1, 4))):
                c = int(rng.integers(0, 3))
                bw, bh = int(rng.integers(18, 40)), int(rng.integers(18, 40))
                if c == 2:  # bars are long and thin
                    bw, bh = int(rng.integers(40, 60)), int(rng.integers(8, 14))
                if c == 1:
                    bh = bw
                x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                colour = rng.integers(140, 256, 3).astype(np.uint8)
                if c == 1:
                    r = bw / 2
                    mask = (xx - x0 - r + 0.5) ** 2 + (yy - y0 - r + 0.5) ** 2 <= r * r
                    img[mask] = colour
                else:
                    img[y0:y0 + bh, x0:x0 + bw] = colour
                boxes.append([x0, y0, x0 + bw, y0 + bh])
                labels.append(c)
            self.arrays.append(img)
            self.boxes.append(np.asarray(boxes, np.float32))
            self.labels.append(np.asarray(labels, np.int64))
        self.sizes = [(w, h)] * n
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.arrays)

    def image(self, i: int) -> Any:
        from PIL import Image

        return Image.fromarray(self.arrays[i])
