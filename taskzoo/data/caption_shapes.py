"""A tiny offline captioning set: one or two coloured shapes on a noisy background, each
image with five captions that name colours, shapes and where they are. Tests and
`taskzoo bench --quick` use it; it is not a benchmark.

    >>> data = caption_shapes(4, seed=0)
    >>> len(data), data.arrays[0].shape, len(data.captions[0])
    (4, (64, 64, 3), 5)

Every caption is true of its image, so a captioner that reads the image beats the most
common caption, and one that attends looks at the shape it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 240),
           "yellow": (240, 220, 40)}
SHAPES = ("square", "circle", "bar")
SIDES = ("left", "right")


@dataclass
class CaptionShapes:
    """Images (uint8 [H, W, 3]) and their five captions each."""

    arrays: list[np.ndarray]
    captions: list[list[str]]
    name: str = "synthetic caption shapes"
    objects: list[list[tuple[str, str, str]]] = field(default_factory=list)  # (colour, shape, side)

    def __len__(self) -> int:
        return len(self.arrays)


def _draw(img: np.ndarray, shape: str, colour: tuple[int, int, int], x0: int, y0: int,
          side: int) -> None:
    h, w = side, side
    if shape == "bar":
        h = max(4, side // 3)
    if shape == "circle":
        yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
        r = side / 2
        img[(xx - x0 - r + 0.5) ** 2 + (yy - y0 - r + 0.5) ** 2 <= r * r] = colour
    else:
        img[y0:y0 + h, x0:x0 + w] = colour


def _captions(objs: list[tuple[str, str, str]], rng: np.random.Generator) -> list[str]:
    (c1, s1, p1), *rest = objs
    if not rest:
        out = [f"a {c1} {s1}", f"a {c1} {s1} on the {p1}", f"one {c1} {s1}",
               f"there is a {c1} {s1} on the {p1}", f"a {s1} that is {c1}"]
    else:
        c2, s2, p2 = rest[0]
        out = [f"a {c1} {s1} and a {c2} {s2}", f"a {c2} {s2} and a {c1} {s1}",
               f"a {c1} {s1} on the {p1} and a {c2} {s2} on the {p2}",
               f"two shapes a {c1} {s1} and a {c2} {s2}",
               f"a {c2} {s2} on the {p2} next to a {c1} {s1}"]
    rng.shuffle(out)
    return out


def caption_shapes(n: int = 200, *, seed: int = 0, size: int = 64) -> CaptionShapes:
    """`n` images `size` x `size` drawn from `seed`: a shape on the left and/or the right."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    arrays, captions, objects = [], [], []
    for _ in range(n):
        img = rng.integers(0, 70, (size, size, 3)).astype(np.uint8)
        sides = [0, 1] if rng.random() < 0.5 else [int(rng.integers(0, 2))]
        objs = []
        for half in sides:
            colour, shape = names[int(rng.integers(0, len(names)))], SHAPES[int(rng.integers(0, 3))]
            side = int(rng.integers(size // 5, size // 3))
            x0 = int(rng.integers(0, size // 2 - side)) + half * size // 2
            y0 = int(rng.integers(0, size - side))
            _draw(img, shape, COLOURS[colour], x0, y0, side)
            objs.append((colour, shape, SIDES[half]))
        arrays.append(img)
        captions.append(_captions(objs, rng))
        objects.append(objs)
    return CaptionShapes(arrays=arrays, captions=captions, objects=objects,
                         name=f"synthetic caption shapes ({n} images)")


__all__ = ["CaptionShapes", "caption_shapes", "COLOURS", "SHAPES"]
