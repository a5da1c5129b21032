"""What a captioning run leaves to look at: test images with the generated caption and a
reference, the attention of one caption word by word over its image (the figure of Show,
Attend and Tell), and every test caption beside its references as a table."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


def _upsample(att: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """An attention grid [h, w] smoothly enlarged to the image (bicubic, as the paper's
    figures upsample and blur theirs), scaled to [0, 1]."""
    a = att.float()[None, None]
    big = nn.functional.interpolate(a, size=size, mode="bicubic", align_corners=False)[0, 0]
    big = big.clamp_min(0)
    return (big / big.max().clamp_min(1e-8)).numpy()


def attention_png(image: np.ndarray, words: Sequence[str], maps: torch.Tensor, *,
                  title: str = "", cols: int = 5) -> bytes:
    """The image, then one panel per word (and `<end>` when its map is there): the image
    dimmed where the word's attention is low. `maps` [len, h, w]."""
    from taskzoo.report import grid_axes, png_bytes

    labels = list(words) + ["<end>"] * (len(maps) - len(words))
    fig, axes = grid_axes(1 + len(maps), cols=cols, cell=(2.0, 2.2),
                          extra=0.5 if title else 0.1)
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=9)
    h, w = image.shape[:2]
    for ax, word, att in zip(axes[1:], labels, maps):
        a = _upsample(att, (h, w))
        ax.imshow((image.astype(np.float32) * (0.15 + 0.85 * a[..., None])).astype(np.uint8))
        ax.imshow(a, cmap="inferno", alpha=0.25, vmin=0, vmax=1)
        ax.set_title(word, fontsize=11)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def caption_grid_png(images: Sequence[np.ndarray], generated: Sequence[str],
                     references: Sequence[str], *, title: str, cols: int = 4) -> bytes:
    """Images with the generated caption (bold) and one human reference under each."""
    from taskzoo.report import grid_axes, png_bytes

    fig, axes = grid_axes(len(images), cols=cols, cell=(3.2, 3.9), extra=0.4)
    for ax, img, gen, ref in zip(axes, images, generated, references):
        ax.imshow(img)
        ax.set_title("\n".join(textwrap.wrap(gen, 34)), fontsize=8, fontweight="bold")
        ax.text(0.5, -0.04, "ref: " + "\n".join(textwrap.wrap(ref, 40)), fontsize=7,
                ha="center", va="top", transform=ax.transAxes, color="#444444")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def pick_attention_example(outputs: list[tuple[list[str], torch.Tensor]],
                           nouns: Sequence[str] = ("dog", "man", "woman", "boy", "girl",
                                                   "child", "ball", "bike", "water")) -> int:
    """An image whose caption names a concrete object (the paper shows such ones), with a
    caption of 6 to 12 words; the first one otherwise."""
    for noun in nouns:
        for i, (words, _) in enumerate(outputs):
            if noun in words and 6 <= len(words) <= 12:
                return i
    return 0


def caption_reports(task: Any, model: nn.Module, data: Any) -> dict[str, str | bytes]:
    split = task.final_splits[-1]
    outputs = task.last_outputs.get(split)
    if outputs is None:
        model.eval()
        with torch.no_grad():
            outputs = task.generate(model, data.images[split])
    images, refs = data.images[split], data.references[split]
    names = data.names.get(split) or [str(i) for i in range(len(images))]
    out: dict[str, str | bytes] = {}
    # the table: every image, its caption and references
    lines = ["image\tgenerated\treferences"]
    lines += [f"{n}\t{' '.join(w)}\t{' | '.join(r)}" for n, (w, _), r in zip(names, outputs, refs)]
    out[f"captions_{split}.tsv"] = "\n".join(lines) + "\n"
    # 12 images spread over the split
    pick = np.linspace(0, len(images) - 1, min(12, len(images))).round().astype(int)
    out[f"captions_{split}.png"] = caption_grid_png(
        [images[i] for i in pick], [" ".join(outputs[i][0]) for i in pick],
        [refs[i][0] for i in pick],
        title=f"{task.name}: {data.name}, {split} (beam {task.cfg.beam}; bold = generated)")
    # the attention of one caption, word by word
    i = pick_attention_example(outputs)
    words, att = outputs[i]
    if len(att):
        out[f"attention_{split}.png"] = attention_png(
            images[i], words, att,
            title=f"{names[i]}: \"{' '.join(words)}\"")
    return out


__all__ = ["attention_png", "caption_grid_png", "caption_reports", "pick_attention_example"]
