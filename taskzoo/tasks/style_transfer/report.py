"""The run's picture, `grid.png`: test photos down; across, the photo, the network's one pass,
the per-image optimisation and the same optimisation with a random loss network, under the
painting."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

ROWS = 4  # photos shown


def _u8(image: torch.Tensor) -> np.ndarray:
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def style_grid_png(painting: np.ndarray, rows: list[list[np.ndarray]], columns: list[str], *,
                   title: str) -> bytes:
    """The painting above a grid of images (rows of equal length, uint8 [H, W, 3]) with
    column titles."""
    from taskzoo.report import grid_axes, png_bytes

    cols = len(columns)
    fig, axes = grid_axes((len(rows) + 1) * cols, cols=cols, cell=(2.2, 2.2), extra=0.4)
    axes[0].imshow(painting)
    axes[0].set_title("the painting", fontsize=8)
    for r, row in enumerate(rows, start=1):
        for c, img in enumerate(row):
            ax = axes[r * cols + c]
            ax.imshow(img)
            if r == 1:
                ax.set_title(columns[c], fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def run_grid(task: Any, model: nn.Module, data: Any) -> dict[str, bytes]:
    """{"grid.png": ...} from the test photos (dev when a run has no test split)."""
    split = "test" if "test" in data.splits else "dev"
    photos = data.splits.get(split)
    if photos is None or not len(photos):
        return {}
    made_by = [v for v in task.baseline_images.values() if v]
    n = min(ROWS, len(photos), *(len(v) for v in made_by))  # rows the baselines cover
    x = task.runtime.to_device(torch.stack([photos[i] for i in range(n)]))
    with task.runtime.inference():
        made = model(x).float().clamp(0, 1).cpu()
    columns = ["photo", "network (one pass)"]
    extra = [(k, v) for k, v in (("optimised per image", "optimized"),
                                 ("optimised, random loss net", "random"))
             if task.baseline_images.get(v)]
    columns += [k for k, _ in extra]
    rows = []
    for i in range(n):
        row = [_u8(x[i]), _u8(made[i])]
        row += [_u8(task.baseline_images[v][i][0]) for _, v in extra]
        rows.append(row)
    painting = _u8(data.painting[0])
    return {"grid.png": style_grid_png(painting, rows, columns,
                                       title=f"{data.style}: {split} photos")}
