"""The faces task's pictures: a photo with its faces drawn (boxes, the five landmarks, names)
and the run's ORL sheet (faces found, the landmarks, who each test face was taken for)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from taskzoo.report import grid_axes, png_bytes

MARK_COLOURS = ("#ff5252", "#448aff", "#ffd740", "#e040fb", "#18ffff")  # eyes, nose, mouth


def draw_faces_png(image: torch.Tensor, result: dict[str, Any]) -> bytes:
    """PNG bytes of `image` (uint8 [3, H, W]) with each face's box, its landmarks as dots
    and its label: the name and distance with a gallery, else the score."""
    import io

    from PIL import Image
    from torchvision.utils import draw_bounding_boxes, draw_keypoints

    from taskzoo.tasks.detection.predictor import label_font

    boxes = torch.tensor(result["boxes"], dtype=torch.float32).reshape(-1, 4)
    img = image
    if len(boxes):
        names = result.get("names")
        text = ([f"{n} {d:.2f}" for n, d in zip(names, result["distances"])] if names
                else [f"face {s:.2f}" for s in result["scores"]])
        colours = ["#9e9e9e" if names and n == "unknown" else "#00e676"
                   for n in (names or text)]
        side = max(image.shape[-2:])
        img = draw_bounding_boxes(img, boxes, labels=text, colors=colours,
                                  width=max(2, side // 300), font=label_font(),
                                  font_size=max(11, side // 45))
        marks = torch.tensor(result["landmarks"], dtype=torch.float32).reshape(-1, 5, 2)
        for j, colour in enumerate(MARK_COLOURS):
            img = draw_keypoints(img, marks[:, j:j + 1], colors=colour,
                                 radius=max(2, side // 250))
    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return buf.getvalue()


def orl_png(data: Any, found: Any, predicted: np.ndarray, *, shown: int = 24) -> bytes:
    """A sheet of test faces: the box and landmarks found (dashed box: no face found, the
    whole photo was described), and the person each was taken for with 5 enrolled photos
    (green right, red wrong); mistakes first."""
    test = np.asarray(data.test)
    wrong = predicted != data.targets[test]
    order = np.r_[np.flatnonzero(wrong), np.flatnonzero(~wrong)][:shown]
    fig, axes = grid_axes(len(order), cols=8, cell=(1.5, 1.9), extra=0.5)
    for ax, j in zip(axes, order):
        i = int(test[j])
        ax.imshow(data.arrays[i], cmap="gray", vmin=0, vmax=255)
        faces = found.faces[i]
        x1, y1, x2, y2 = [float(v) for v in faces.boxes[0]]
        style = "--" if found.fallback[i] else "-"
        ax.plot([x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1], style, color="#00e676", lw=1)
        for k, colour in enumerate(MARK_COLOURS):
            ax.plot(*faces.landmarks[0, k].tolist(), "o", color=colour, ms=2.5)
        ax.set_xlim(0, data.arrays.shape[2])
        ax.set_ylim(data.arrays.shape[1], 0)
        truth, guess = data.labels[data.targets[i]], data.labels[predicted[j]]
        ax.set_title(f"{truth} -> {guess}" if wrong[j] else truth, fontsize=7,
                     color="#c62828" if wrong[j] else "#2e7d32")
    fig.suptitle(f"ORL test faces: {int(wrong.sum())} of {len(test)} named wrongly "
                 "(5 enrolled photos a person); mistakes first", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)
