"""Pictures for a run directory, drawn on a Matplotlib `Figure` with the Agg canvas: no
window, no global backend switch, nothing left in pyplot's registry of the caller's session.

Every run gets `training_curves.png` (training loss and evaluation metrics against steps);
tasks add their own (a confusion matrix, their worst mistakes, a learning curve).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def new_figure(width: float, height: float, dpi: int = 100) -> Any:
    """A Figure on its own Agg canvas (matplotlib is imported here, on first use)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def read_records(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's records (a line cut by a crash is skipped)."""
    records = []
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def training_curves_png(records: Sequence[dict[str, Any]], *, title: str) -> bytes | None:
    """Training loss and each evaluation metric (a panel each) against optimizer steps; None
    when there is nothing to draw."""
    loss = [(r["step"], r["train/loss"]) for r in records if "train/loss" in r]
    evals: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for key, value in r.items():
            split = key.split("/", 1)[0]
            if ("/" in key and split not in ("train", "rollout")
                    and isinstance(value, (int, float)) and math.isfinite(value)):
                evals.setdefault(key, []).append((r["step"], float(value)))
    if not loss and not evals:
        return None
    # at most 6 metrics, the most informative first: accuracy-like, then the rest; each on
    # its own axes, as scales differ (PSNR ~20 dB beside an MSE of 0.007 would be a flat line)
    keys = sorted(evals, key=lambda k: (not any(w in k for w in ("acc", "return", "f1")), k))[:6]
    cols = min(1 + len(keys), 4)
    rows = math.ceil((1 + len(keys)) / cols)
    fig = new_figure(3.3 * cols, 3.2 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    ax_loss = axes[0]
    if loss:
        steps, values = zip(*loss)
        ax_loss.plot(steps, values, color="tab:blue", lw=1.2)
        if min(values) > 0 and max(values) / min(values) > 20:
            ax_loss.set_yscale("log")
    ax_loss.set(xlabel="step", ylabel="train/loss", title="training loss")
    ax_loss.grid(alpha=0.3)
    for ax, key in zip(axes[1:], keys):
        xs, ys = zip(*evals[key])
        ax.plot(xs, ys, "o-", ms=3, lw=1.2, color="tab:orange")
        ax.set(xlabel="step", title=key)
        ax.grid(alpha=0.3)
    for ax in axes[1 + len(keys):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def confusion_png(gold: np.ndarray, pred: np.ndarray, labels: Sequence[str], *,
                  title: str) -> bytes:
    """Row-normalised confusion matrix with counts, from scikit-learn."""
    from sklearn.metrics import confusion_matrix

    k = len(labels)
    counts = confusion_matrix(gold, pred, labels=list(range(k)))
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = min(14.0, 2.5 + 0.45 * k)
    fig = new_figure(side, side * 0.9)
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 20:
        names = [str(n)[:14] for n in labels]
        ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return png_bytes(fig)


def grid_axes(n: int, *, cols: int, cell: tuple[float, float],
              extra: float = 0.0) -> tuple[Any, np.ndarray]:
    """A figure of `n` panels in rows of `cols` (each `cell` inches, `extra` inches of title
    room), axes switched off, as (figure, flat array of axes)."""
    n = max(1, n)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = new_figure(cell[0] * cols, cell[1] * rows + extra)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    return fig, axes


def image_grid_png(images: Sequence[np.ndarray], captions: Sequence[str], *, title: str,
                   cols: int = 8) -> bytes:
    """A grid of images ([H, W] grey or [H, W, 3] uint8) with a caption under each."""
    fig, axes = grid_axes(len(images), cols=cols, cell=(1.6, 1.9), extra=0.4)
    for ax, img, caption in zip(axes, images, captions):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)
