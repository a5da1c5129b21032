"""What a detection run leaves to look at: test images with predicted and true boxes, the
precision-recall curve of every class at IoU 0.5 (COCO's 101-point interpolation, from
torchmetrics' extended summary) and per-class AP as a table."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch
from torch import nn

from taskzoo.tasks.detection.predictor import draw_png


def detection_reports(task: Any, model: nn.Module, data: Any) -> dict[str, str | bytes]:
    from PIL import Image

    from taskzoo.report import new_figure, png_bytes

    split = task.final_splits[-1]
    preds, gold = task.predict_split(model, data, split)
    with contextlib.redirect_stdout(io.StringIO()):
        r = task._map(preds, gold, class_metrics=True, extended_summary=True)
    out: dict[str, str | bytes] = {}

    # per-class AP, best first
    classes = [int(k) for k in np.atleast_1d(r["classes"].numpy())]
    ap = np.atleast_1d(r["map_per_class"].numpy())
    lines = [f"# {task.name}: {data.name}, {split}; AP at IoU 0.50:0.95 (COCO), per class",
             "class\tAP\tAP50\ttrue boxes\tpredicted (score >= conf)"]
    precision = r["precision"].numpy()  # [iou thresholds, recall points, classes, areas, maxdets]
    n_true = np.zeros(len(data.classes), int)
    n_pred = np.zeros(len(data.classes), int)
    for g, p in zip(gold, preds):
        n_true += np.bincount(g["labels"].numpy(), minlength=len(data.classes))
        strong = p["labels"][p["scores"] >= task.cfg.conf].numpy()
        n_pred += np.bincount(strong, minlength=len(data.classes))
    rows = []
    for k, c in enumerate(classes):
        pr50 = precision[0, :, k, 0, -1]
        ap50 = float(pr50[pr50 > -1].mean()) if (pr50 > -1).any() else float("nan")
        rows.append((float(ap[k]), f"{data.classes[c]}\t{ap[k]:.4f}\t{ap50:.4f}\t{n_true[c]}\t"
                                   f"{n_pred[c]}"))
    lines += [text for _, text in sorted(rows, key=lambda t: -t[0])]
    out[f"ap_per_class_{split}.tsv"] = "\n".join(lines) + "\n"

    # precision-recall at IoU 0.5, a line per class (the 10 most frequent when there are many)
    fig = new_figure(5.5, 4.5)
    ax = fig.subplots()
    recall = np.linspace(0, 1, precision.shape[1])
    order = sorted(range(len(classes)), key=lambda k: -n_true[classes[k]])[:10]
    for k in order:
        pr = precision[0, :, k, 0, -1]
        if (pr > -1).any():
            ax.plot(recall, np.clip(pr, 0, 1), label=f"{data.classes[classes[k]]} "
                                                     f"(AP50 {pr[pr > -1].mean():.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"{task.name}: precision-recall at IoU 0.5, {split}", fontsize=9)
    fig.tight_layout()
    out[f"pr_curve_{split}.png"] = png_bytes(fig)

    # up to 8 test images: predictions (score >= conf) in colour, the truth in white
    examples = data.splits[split]
    pics = []
    for i in range(min(8, len(examples))):
        image = examples[i][0].as_subclass(torch.Tensor)
        p = preds[i]
        keep = p["scores"] >= task.cfg.conf
        png = draw_png(image, p["boxes"][keep].tolist(),
                       [data.classes[int(k)] for k in p["labels"][keep]],
                       p["scores"][keep].tolist(), truth=gold[i]["boxes"].tolist())
        pics.append(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
    if pics:
        out[f"boxes_{split}.png"] = _grid(pics, title=f"{data.name}: {split} images, predicted "
                                          f"(score >= {task.cfg.conf}) in colour, true in white")
    if data.skipped:
        out["skipped_files.txt"] = "".join(f"{p}\t{why}\n" for p, why in data.skipped)
    return out


def _grid(images: list[np.ndarray], *, title: str, cols: int = 4) -> bytes:
    from taskzoo.report import new_figure, png_bytes

    cols = min(cols, len(images))
    rows = -(-len(images) // cols)
    fig = new_figure(3.6 * cols, 3.2 * rows + 0.4, dpi=110)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, img in zip(axes, images):
        ax.imshow(img)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)
