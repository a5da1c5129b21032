"""Face detection with the Ultra-Light detectors (`models.ultraface`): what upstream's
`Predictor.predict` does, on torch tensors.

    >>> net = build("ultraface_rfb"); net.load_state_dict(ultraface_state("rfb"))  # doctest: +SKIP
    >>> boxes, scores = detect(net.eval(), image)   # image: uint8 [3, H, W] RGB  # doctest: +SKIP

The steps, as upstream's (vision/ssd/predictor.py, box_utils.hard_nms): resize the photo to
`size` (320x240: the input the published weights were trained at), (pixel - 127) / 128,
the network, softmax, decode against the priors, keep the faces scoring above `conf`, the
`candidates` best of them, hard NMS at IoU `iou` on the boxes as image fractions, and the
boxes scaled to the photo's pixels (x1, y1, x2, y2), not clipped to it (as upstream's).

Where this differs from upstream, and why:

- Resize: upstream calls `cv2.resize` (bilinear, no antialias, uint8 out, 11-bit fixed-point
  weights). Here `torch.nn.functional.interpolate` (bilinear, half-pixel centres, no
  antialias: the weights were trained on cv2's unfiltered resize) in float, rounded half up
  to whole grey levels as cv2 rounds. The two agree exactly when a side shrinks by an
  integer factor (640x480 -> 320x240); otherwise about 12 % of the values differ by one
  grey level (cv2's quantised weights), which moves boxes by a fraction of a pixel.
  OpenCV is not a dependency of taskzoo.
- NMS: `torchvision.ops.nms`, whose IoU has no epsilon; upstream's adds 1e-5 to the union,
  which only matters for a pair of boxes whose IoU lies within about 1e-3 of `iou`.
- Upstream's scripts also cap the faces after NMS (`top_k = candidate_size / 2`), a cap no
  photo reaches at these thresholds; there is none here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.errors import InputError
from taskzoo.models.ultraface import decode_boxes, ultraface_priors

MEAN, STD = 127.0, 128.0  # upstream's input normalisation (fd_config.image_mean, image_std)


@lru_cache(maxsize=8)
def _priors(width: int, height: int) -> torch.Tensor:
    return ultraface_priors(width, height)


def _check(image: object, size: tuple[int, int]) -> None:
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, int) and s >= 16 for s in size)):
        raise InputError(f"face detector input size {size!r}: expected (width, height), two "
                         "whole numbers >= 16, e.g. (320, 240)")
    if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 3
            and image.shape[0] == 3 and image.shape[1] > 0 and image.shape[2] > 0):
        what = (f"{image.dtype} tensor of shape {tuple(image.shape)}"
                if isinstance(image, torch.Tensor) else type(image).__name__)
        raise InputError(f"face detection expects an RGB image as a uint8 tensor [3, H, W]; "
                         f"got a {what}")


def preprocess(images: Sequence[torch.Tensor], size: tuple[int, int] = (320, 240),
               ) -> torch.Tensor:
    """uint8 RGB images [3, H, W] (any sizes) -> the network's input [N, 3, h, w] float,
    each resized to `size` = (w, h) as the module docstring says, then (x - 127) / 128."""
    w, h = size
    out = []
    for image in images:
        x = image.float()
        if tuple(image.shape[1:]) != (h, w):
            x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False,
                              antialias=False)[0]
            x = torch.floor(x + 0.5).clamp_(0, 255)  # whole grey levels, ties up, as cv2
        out.append(x)
    return (torch.stack(out) - MEAN) / STD


def postprocess(logits: torch.Tensor, deltas: torch.Tensor, priors: torch.Tensor,
                width: int, height: int, *, conf: float = 0.7, iou: float = 0.3,
                candidates: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's raw outputs (logits [P, 2], deltas [P, 4]) -> (boxes [N, 4] xyxy in the
    pixels of a `width` x `height` photo, scores [N]), best first."""
    from torchvision.ops import nms

    scores = logits.softmax(-1)[:, 1]
    keep = scores > conf  # strictly above, as upstream
    scores, boxes = scores[keep], decode_boxes(deltas[keep], priors[keep])
    order = scores.argsort(descending=True)[:candidates]  # upstream sorts, then truncates
    scores, boxes = scores[order], boxes[order]
    kept = nms(boxes, scores, iou)  # on image fractions, as upstream
    scale = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    return boxes[kept] * scale, scores[kept]


def detect_batch(model: nn.Module, images: Sequence[torch.Tensor], *,
                 size: tuple[int, int] = (320, 240), conf: float = 0.7, iou: float = 0.3,
                 candidates: int = 200) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`detect` on several photos (any sizes) through one forward pass: a list of
    (boxes, scores) per photo, on the CPU."""
    for image in images:
        _check(image, size)
    if not images:
        return []
    device = next(model.parameters()).device
    x = preprocess(images, size).to(device)
    with torch.inference_mode():
        logits, deltas = model(x)
    priors = _priors(*size).to(device)
    if priors.shape[0] != logits.shape[1]:
        raise InputError(f"the face detector gave {logits.shape[1]} priors for a {size} "
                         f"input, the priors are {priors.shape[0]}: not an Ultra-Light model?")
    found = []
    for i, image in enumerate(images):
        boxes, scores = postprocess(logits[i], deltas[i], priors, image.shape[2],
                                    image.shape[1], conf=conf, iou=iou, candidates=candidates)
        found.append((boxes.cpu(), scores.cpu()))
    return found


def detect(model: nn.Module, image: torch.Tensor, *, size: tuple[int, int] = (320, 240),
           conf: float = 0.7, iou: float = 0.3, candidates: int = 200,
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The faces in one RGB photo (uint8 tensor [3, H, W]) found by an Ultra-Light detector
    in eval mode: (boxes [N, 4] float, x1 y1 x2 y2 in the photo's pixels, scores [N] in
    (conf, 1]), best first. `size` = (width, height) of the network input; `conf` the face
    probability a box must exceed; `iou` the NMS overlap; `candidates` the most boxes NMS
    considers (upstream's `candidate_size`)."""
    return detect_batch(model, [image], size=size, conf=conf, iou=iou,
                        candidates=candidates)[0]
