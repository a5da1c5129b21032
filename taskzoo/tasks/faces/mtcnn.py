"""MTCNN's cascade: faces, scores and 5 landmarks from P-, R- and O-Net (`models.mtcnn`).

Written from reading facenet-pytorch 2.6.0's `detect_face` (MIT), step for step, so that the
published weights give the same boxes as the original code:

1. an image pyramid (scale 12 / min_face, then times `factor` while the short side is >= 12
   px), each level resized by area averaging and normalised to (x - 127.5) / 128;
2. P-Net's 12x12 windows (stride 2) whose face probability is >= thresholds[0]: NMS at 0.5
   within each level, 0.7 across levels, the box regression (by width, not width + 1),
   squared;
3. each box cropped (clipped to the image, not padded) and resized to 24x24 for R-Net: kept
   above thresholds[1], NMS 0.7, regressed (by width + 1), squared;
4. the same at 48x48 for O-Net, above thresholds[2]: landmarks from the crop, the regression,
   then NMS at 0.7 on intersection over the *smaller* area.

Boxes follow the original's 1-based inclusive convention (a box's crop is the pixels
x1 - 1 ... x2 - 1 after truncation); landmarks are 0-based pixel coordinates. The five
landmarks are, in order: left eye, right eye, nose, left mouth corner, right mouth corner,
where "left" is the *image's* left (the subject's right eye), as facenet-pytorch returns them.

`refine` runs O-Net alone on boxes from another detector, to give them landmarks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.errors import InputError


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                iou: float) -> torch.Tensor:
    """torchvision's batched NMS, imported on first use (listing the tasks stays light)."""
    from torchvision.ops import batched_nms as nms

    return nms(boxes, scores, groups, iou)

Detections = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # boxes [N,4], scores, marks [N,5,2]
CHUNK = 512  # crops per R-/O-Net forward, as upstream (a batch size can change the last bits)
MIN_NMS = 0.7  # O-Net's final NMS threshold, on intersection over the smaller box


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _check_images(images: object, what: str) -> torch.Tensor:
    valid = f"valid: a torch.uint8 RGB tensor of shape {what}"
    if not isinstance(images, torch.Tensor):
        raise InputError(f"MTCNN got a {type(images).__name__} image; {valid}")
    shape = tuple(images.shape)
    if images.dtype != torch.uint8:
        raise InputError(f"MTCNN got an image of dtype {images.dtype}; {valid}")
    if images.dim() != what.count(",") + 1 or shape[-3] != 3:
        raise InputError(f"MTCNN got an image of shape {list(shape)}; {valid}")
    if shape[-1] == 0 or shape[-2] == 0:
        raise InputError(f"MTCNN got an empty image of shape {list(shape)}; {valid}")
    return images


def _check_options(min_face: float, thresholds: Sequence[float], factor: float) -> None:
    if not min_face >= 1:
        raise InputError(f"MTCNN min_face={min_face}; valid: a face size in pixels >= 1")
    if len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
        raise InputError(f"MTCNN thresholds={tuple(thresholds)}; valid: 3 probabilities in "
                         "[0, 1] for P-, R- and O-Net")
    if not 0 < factor < 1:
        raise InputError(f"MTCNN factor={factor}; valid: a pyramid step in (0, 1)")


def pyramid(height: int, width: int, *, min_face: float = 20, factor: float = 0.709
            ) -> list[float]:
    """The scales of the image pyramid: a face of `min_face` px becomes P-Net's 12 px window.

    >>> [round(s, 4) for s in pyramid(30, 40)]
    [0.6, 0.4254]
    """
    scale = 12.0 / min_face
    short = min(height, width) * scale
    scales = []
    while short >= 12:  # accumulated exactly as upstream, so the level sizes match
        scales.append(scale)
        scale *= factor
        short *= factor
    return scales


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box grown to a square of its longer side about its centre (MTCNN's `rerec`);
    columns past the 4th are kept."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """R- and O-Net's box regression, in units of the inclusive width (x2 - x1 + 1)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.clone()
    out[:, :4] = torch.stack([boxes[:, 0] + offsets[:, 0] * w, boxes[:, 1] + offsets[:, 1] * h,
                              boxes[:, 2] + offsets[:, 2] * w, boxes[:, 3] + offsets[:, 3] * h], 1)
    return out


def _windows(pnet: nn.Module, images: torch.Tensor, scale: float, threshold: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """P-Net at one pyramid level: rows (x1, y1, x2, y2, score, 4 offsets) and their image."""
    h, w = images.shape[2:]
    level = F.interpolate(images, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
    offsets, prob = pnet(_normalise(level))
    face = prob[:, 1]
    hit = face >= threshold
    where = hit.nonzero()
    xy = where[:, 1:].to(offsets.dtype).flip(1)  # (row, col) -> (x, y) of the window
    # window (x, y) covers the level's pixels 2x ... 2x + 11, mapped back 1-based
    top_left = ((2 * xy + 1) / scale).floor()
    bottom_right = ((2 * xy + 12) / scale).floor()
    rows = torch.cat([top_left, bottom_right, face[hit].unsqueeze(1),
                      offsets.permute(1, 0, 2, 3)[:, hit].T], 1)
    return rows, where[:, 0]


def _proposals(pnet: nn.Module, images: torch.Tensor, scales: list[float], threshold: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1: P-Net's windows over the pyramid, merged, regressed and squared."""
    rows, owner = [], []
    for scale in scales:
        level_rows, level_owner = _windows(pnet, images, scale, threshold)
        keep = batched_nms(level_rows[:, :4], level_rows[:, 4], level_owner, 0.5)
        rows.append(level_rows[keep])
        owner.append(level_owner[keep])
    boxes, image = torch.cat(rows), torch.cat(owner)
    keep = batched_nms(boxes[:, :4], boxes[:, 4], image, 0.7)
    boxes, image = boxes[keep], image[keep]
    wh = boxes[:, 2:4] - boxes[:, 0:2]  # upstream scales P-Net's offsets by x2 - x1 here
    moved = torch.cat([boxes[:, 0:2] + boxes[:, 5:7] * wh, boxes[:, 2:4] + boxes[:, 7:9] * wh,
                       boxes[:, 4:5]], 1)
    return square(moved), image


def _crops(images: torch.Tensor, boxes: torch.Tensor, image: torch.Tensor, size: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each box's pixels (truncated, clipped to the image) resized to size x size by area,
    normalised; and the mask of boxes that have any pixel (the others are dropped)."""
    h, w = images.shape[2:]
    corners = boxes[:, :4].trunc().int().cpu()
    x0 = corners[:, 0].clamp(min=1) - 1
    y0 = corners[:, 1].clamp(min=1) - 1
    x1 = corners[:, 2].clamp(max=w)
    y1 = corners[:, 3].clamp(max=h)
    valid = (x1 > x0) & (y1 > y0)
    out = [F.interpolate(images[int(image[k]), :, y0[k]:y1[k], x0[k]:x1[k]].unsqueeze(0),
                         size=(size, size), mode="area")
           for k in valid.nonzero()[:, 0].tolist()]
    empty = images.new_zeros(0, 3, size, size)
    return _normalise(torch.cat(out) if out else empty), valid.to(boxes.device)


def _in_chunks(net: nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
    outs = [net(crops[i:i + CHUNK]) for i in range(0, max(len(crops), 1), CHUNK)]
    return tuple(torch.cat(parts) for parts in zip(*outs))


def _refine_rnet(rnet: nn.Module, images: torch.Tensor, boxes: torch.Tensor,
                 image: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 2: R-Net on 24x24 crops; kept, merged, regressed and squared."""
    crops, valid = _crops(images, boxes, image, 24)
    boxes, image = boxes[valid], image[valid]
    offsets, prob = _in_chunks(rnet, crops)
    ok = prob[:, 1] > threshold
    boxes = torch.cat([boxes[ok, :4], prob[ok, 1:2]], 1)
    image, offsets = image[ok], offsets[ok]
    keep = batched_nms(boxes[:, :4], boxes[:, 4], image, 0.7)
    return square(_regress(boxes[keep], offsets[keep])), image[keep]


def _onet(onet: nn.Module, images: torch.Tensor, boxes: torch.Tensor, image: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """O-Net on 48x48 crops of `boxes`: (regressed boxes, scores, landmarks, mask of the boxes
    that had pixels); landmarks are placed in the box O-Net saw, before its regression."""
    crops, valid = _crops(images, boxes, image, 48)
    boxes = boxes[valid]
    offsets, marks, prob = _in_chunks(onet, crops)
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    xs = w.unsqueeze(1) * marks[:, :5] + boxes[:, 0:1] - 1
    ys = h.unsqueeze(1) * marks[:, 5:] + boxes[:, 1:2] - 1
    return _regress(boxes[:, :4], offsets), prob[:, 1], torch.stack([xs, ys], 2), valid


def nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float = MIN_NMS
            ) -> torch.Tensor:
    """Greedy NMS on intersection over the smaller box (inclusive pixel areas), the original
    MTCNN's last step; indices by falling score."""
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort(descending=True)
    keep = []
    while order.numel():
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest]) + 1).clamp(min=0)
        ih = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest]) + 1).clamp(min=0)
        overlap = iw * ih / torch.minimum(area[i], area[rest])
        order = rest[overlap <= threshold]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def _empty(device: torch.device) -> Detections:
    return (torch.zeros(0, 4, device=device), torch.zeros(0, device=device),
            torch.zeros(0, 5, 2, device=device))


def _float_images(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    weight = net.pnet.conv1.weight
    return images.to(device=weight.device, dtype=weight.dtype)


@torch.no_grad()
def detect_batch(net: nn.Module, images: torch.Tensor, *, min_face: float = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709
                 ) -> list[Detections]:
    """`detect` on a batch of equal-sized images (uint8 [B, 3, H, W] RGB): one
    (boxes, scores, landmarks) per image."""
    _check_images(images, "[B, 3, H, W]")
    _check_options(min_face, thresholds, factor)
    x = _float_images(net, images)
    scales = pyramid(x.shape[2], x.shape[3], min_face=min_face, factor=factor)
    results = [_empty(x.device) for _ in range(len(x))]
    if not scales:
        return results
    boxes, image = _proposals(net.pnet, x, scales, thresholds[0])
    if len(boxes):
        boxes, image = _refine_rnet(net.rnet, x, boxes, image, thresholds[1])
    if not len(boxes):
        return results
    moved, scores, marks, valid = _onet(net.onet, x, boxes, image)
    ok = scores > thresholds[2]
    moved, scores, marks, image = moved[ok], scores[ok], marks[ok], image[valid][ok]
    for b in image.unique().tolist():
        mine = (image == b).nonzero()[:, 0]
        keep = mine[nms_min(moved[mine], scores[mine])]
        results[b] = (moved[keep], scores[keep], marks[keep])
    return results


def detect(net: nn.Module, image: torch.Tensor, *, min_face: float = 20,
           thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709
           ) -> Detections:
    """The faces in one image (uint8 [3, H, W] RGB) by the `mtcnn` network `net`: boxes
    [N, 4] (x1, y1, x2, y2 pixels), O-Net's face probabilities [N] (falling) and landmarks
    [N, 5, 2] (x, y pixels: left eye, right eye, nose, left and right mouth corners, left
    meaning the image's left). `min_face` is the smallest face searched for in pixels,
    `thresholds` the P-, R- and O-Net probabilities a face must pass, `factor` the pyramid's
    step."""
    _check_images(image, "[3, H, W]")
    return detect_batch(net, image.unsqueeze(0), min_face=min_face, thresholds=thresholds,
                        factor=factor)[0]


@torch.no_grad()
def refine(net: nn.Module, image: torch.Tensor, boxes: torch.Tensor) -> Detections:
    """O-Net alone on given boxes (float [N, 4] x1, y1, x2, y2 pixels of `image`, uint8 [3, H,
    W] RGB), each first squared about its centre as MTCNN does between stages: for each box
    in the given order, O-Net's regressed box, its face probability and 5 landmarks (as
    `detect`'s). No threshold, no NMS: the caller decides which to keep."""
    _check_images(image, "[3, H, W]")
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = list(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise InputError(f"MTCNN refine got boxes {shape}; valid: a float tensor [N, 4] of "
                         "x1, y1, x2, y2 pixels")
    if not boxes.is_floating_point() or not torch.isfinite(boxes).all():
        raise InputError(f"MTCNN refine got boxes of dtype {boxes.dtype} or with non-finite "
                         "values; valid: finite float x1, y1, x2, y2 pixels")
    x = _float_images(net, image.unsqueeze(0))
    if not len(boxes):
        return _empty(x.device)
    squared = square(boxes.to(x))
    moved, scores, marks, valid = _onet(net.onet, x, squared,
                                        torch.zeros(len(boxes), dtype=torch.long))
    if not valid.all():
        k = int((~valid).nonzero()[0, 0])
        raise InputError(f"MTCNN refine got box {k} {boxes[k].tolist()} outside the "
                         f"{image.shape[2]}x{image.shape[1]} image; valid: boxes that overlap it")
    return moved, scores, marks
