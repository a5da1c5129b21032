"""yolo_tiny's training target and loss: YOLOv8's task-aligned assigner, CIoU and BCE.

Hand-written because no library has it: torchvision.ops has the IoUs and box losses
(used here) but no label assignment, and the assigner is what makes an anchor-free head
train (TOOD, Feng et al. 2021; YOLOv8). For each gt box:

- candidates: anchor points whose centre lies inside the box (on any level);
- alignment metric t = s^alpha * iou^beta (s: predicted score of the gt's class,
  iou: IoU of the predicted box with the gt; YOLOv8's alpha 0.5, beta 6.0), computed on
  detached float32 predictions;
- positives: the `topk` (10) candidates with the largest t; an anchor claimed by two gts
  keeps the one its predicted box overlaps most;
- soft class target of a positive: t normalised per gt so that its best anchor gets the
  gt's best IoU (t * max_iou / max_t), so scores learn to rank by localisation quality.

Loss (YOLOv8 without DFL: the head predicts ltrb distances directly): BCE on all anchors
against the soft targets, CIoU (torchvision) on positives weighted by their target score,
both divided by the sum of target scores (about the number of objects) but at least the
number of images, so the magnitude does not depend on the batch size, nor explodes on a
batch without objects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def decode_boxes(reg: Tensor, anchors: Tensor, strides: Tensor) -> Tensor:
    """Raw ltrb outputs [..., A, 4] -> xyxy pixel boxes [..., A, 4] in float32.

    Distances are softplus(reg) in stride units (positive, smooth, linear for large boxes)."""
    dist = F.softplus(reg.float()) * strides
    return torch.cat([anchors - dist[..., :2], anchors + dist[..., 2:]], dim=-1)


@torch.no_grad()
def task_aligned_assign(
    scores: Tensor, boxes: Tensor, anchors: Tensor, gt_boxes: Tensor, gt_labels: Tensor, *,
    topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """One image's targets: (fg [A] bool, gt_index [A] long, target_scores [A, C] float32).

    scores: [A, C] predicted probabilities; boxes: [A, 4] predicted xyxy; anchors: [A, 2]
    anchor centres; gt_boxes: [N, 4] xyxy; gt_labels: [N]. Same units for every box."""
    from torchvision.ops import box_iou

    num_anchors, num_classes = scores.shape
    scores, boxes, gt_boxes = scores.float(), boxes.float(), gt_boxes.float()
    fg = torch.zeros(num_anchors, dtype=torch.bool, device=scores.device)
    gt_index = torch.zeros(num_anchors, dtype=torch.long, device=scores.device)
    target = torch.zeros_like(scores)
    if gt_boxes.shape[0] == 0:
        return fg, gt_index, target
    x, y = anchors[:, 0], anchors[:, 1]
    inside = ((x[None] > gt_boxes[:, 0:1]) & (x[None] < gt_boxes[:, 2:3])
              & (y[None] > gt_boxes[:, 1:2]) & (y[None] < gt_boxes[:, 3:4]))  # [N, A]
    iou = box_iou(gt_boxes, boxes).clamp_(min=0) * inside  # [N, A]
    metric = scores[:, gt_labels].T.pow(alpha) * iou.pow(beta) * inside
    # top-k among candidates only: outside anchors rank below every inside one
    k = min(topk, num_anchors)
    top = metric.masked_fill(~inside, -1.0).topk(k, dim=1).indices
    pos = torch.zeros_like(inside).scatter_(1, top, True) & inside  # [N, A]
    # an anchor positive for several gts keeps the gt its box overlaps most
    best = iou.masked_fill(~pos, -1.0).argmax(0)  # [A]
    fg = pos.any(0)
    pos = pos & (torch.arange(pos.shape[0], device=pos.device)[:, None] == best[None])
    metric = metric * pos
    iou = iou * pos
    # (the max is clamped, not offset by YOLOv8's eps 1e-9: early on iou^6 is often below it)
    norm = metric * iou.amax(1, keepdim=True) / metric.amax(1, keepdim=True).clamp(min=1e-30)
    quality = norm.amax(0)  # [A]: zero on background
    target = F.one_hot(gt_labels[best].long(), num_classes).float() * quality[:, None]
    return fg, best, target


def yolo_loss(
    outputs: dict, targets: list[dict], *, topk: int = 10, alpha: float = 0.5,
    beta: float = 6.0, box_weight: float = 7.5, cls_weight: float = 0.5,
) -> tuple[Tensor, dict[str, Tensor]]:
    """(total, {"box", "cls", "iou", "positives"}) for yolo_tiny's raw outputs.

    targets[i]: {"boxes": [N_i, 4] xyxy pixels of the input, "labels": [N_i] int64}."""
    from torchvision.ops import complete_box_iou_loss

    cls_logits, reg = outputs["cls"], outputs["reg"]
    if len(targets) != cls_logits.shape[0]:
        raise ValueError(f"{len(targets)} targets for a batch of {cls_logits.shape[0]} images")
    device = cls_logits.device
    labels = [t["labels"].reshape(-1) for t in targets]
    if sum(len(x) for x in labels):
        low, high = torch.cat([x.to(device) for x in labels]).aminmax()
        if low < 0 or high >= cls_logits.shape[-1]:  # one_hot would fail less clearly
            raise ValueError(f"labels must be in [0, {cls_logits.shape[-1]}), got "
                             f"{int(low)}..{int(high)}")
    with torch.autocast(device.type, enabled=False):  # float32 for IoUs and sums
        logits = cls_logits.float()
        boxes = decode_boxes(reg, outputs["anchors"], outputs["strides"])  # [B, A, 4]
        scores = logits.detach().sigmoid()
        target_scores = torch.zeros_like(logits)
        pred, matched, weight = [], [], []
        for i, t in enumerate(targets):
            gt_boxes = t["boxes"].to(device=device, dtype=torch.float32).reshape(-1, 4)
            gt_labels = t["labels"].to(device=device, dtype=torch.long).reshape(-1)
            fg, index, target = task_aligned_assign(
                scores[i], boxes[i].detach(), outputs["anchors"], gt_boxes, gt_labels,
                topk=topk, alpha=alpha, beta=beta)
            target_scores[i] = target
            pred.append(boxes[i][fg])
            matched.append(gt_boxes[index[fg]])
            weight.append(target[fg].sum(-1))
        norm = target_scores.sum().clamp(min=float(len(targets)))
        cls = F.binary_cross_entropy_with_logits(logits, target_scores, reduction="sum") / norm
        pred_boxes, gt_matched, w = torch.cat(pred), torch.cat(matched), torch.cat(weight)
        if pred_boxes.shape[0]:
            ciou = complete_box_iou_loss(pred_boxes, gt_matched, reduction="none")
            box = (ciou * w).sum() / norm
            with torch.no_grad():
                iou = _aligned_iou(pred_boxes, gt_matched).mean()
        else:  # no object in the batch: a zero that still depends on the box branch
            box = boxes.sum() * 0.0
            iou = box.detach()
        total = box_weight * box + cls_weight * cls
    return total, {"box": box.detach(), "cls": cls.detach(), "iou": iou,
                   "positives": torch.tensor(pred_boxes.shape[0] / len(targets), device=device)}


def _aligned_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of each box in a [K, 4] with the box at the same row of b [K, 4] (for logging;
    torchvision.ops has only the pairwise [K, K] box_iou)."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (a[:, 2:] - a[:, :2]).prod(-1) + (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (area - inter).clamp(min=1e-9)
