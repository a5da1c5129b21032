"""One photo -> its faces: find (a detector), five landmarks (MTCNN's O-Net, or MTCNN's own),
align (a similarity transform onto dlib's face chip) and describe (128-d descriptors whose
Euclidean distance says whether two faces are one person).

    >>> faces = find_faces(net, image, detector="rfb320")      # doctest: +SKIP
    >>> faces.boxes.shape, faces.landmarks.shape               # doctest: +SKIP
    (torch.Size([2, 4]), torch.Size([2, 5, 2]))
    >>> describe(net, image, faces.landmarks).shape            # doctest: +SKIP
    torch.Size([2, 128])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taskzoo.errors import InputError
from taskzoo.tasks.faces import align, mtcnn, ultraface

DETECTORS = ("rfb320", "slim320", "mtcnn")
CHIP = 150  # the descriptor network's input side (dlib's face chip)


@dataclass
class Faces:
    """The faces of one image, best first: boxes [N, 4] xyxy pixels, scores [N], landmarks
    [N, 5, 2] pixels (left eye, right eye, nose, left and right mouth corner, as seen in
    the image)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    landmarks: torch.Tensor

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, keep: torch.Tensor) -> Faces:
        return Faces(self.boxes[keep], self.scores[keep], self.landmarks[keep])


def check_image(image: torch.Tensor) -> torch.Tensor:
    """`image` as uint8 [3, H, W]; InputError otherwise."""
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3 \
            or image.shape[0] != 3:
        what = (f"{image.dtype} {tuple(image.shape)}" if isinstance(image, torch.Tensor)
                else type(image).__name__)
        raise InputError(f"expected an RGB image as a uint8 tensor [3, H, W], got {what}")
    return image


def find_faces(net: nn.Module, image: torch.Tensor, *, detector: str = "rfb320",
               conf: float = 0.7, iou: float = 0.3, min_face: int = 20,
               verify: float = 0.0, size: int = 320) -> Faces:
    """The faces in `image` (uint8 [3, H, W] RGB) by `detector` (rfb320, slim320: boxes from
    Ultra-Light, landmarks from O-Net; mtcnn: MTCNN's cascade alone). `conf` is the
    Ultra-Light score threshold (MTCNN keeps its own three); `verify` the O-Net face
    probability an Ultra-Light box must also reach (0: every box, as Ultra-Light publishes
    them; MTCNN's own last stage uses 0.7); `size` the Ultra-Light input width (320: 320x240
    as the weights were trained; 640: 640x480, upstream's VGA setting, finer on small
    faces); faces narrower than `min_face` pixels are dropped."""
    image = check_image(image)
    if detector == "mtcnn":
        boxes, scores, marks = mtcnn.detect(net.mtcnn, image, min_face=min_face)
    elif detector in ("rfb320", "slim320"):
        shape = (size, size * 3 // 4)
        boxes, scores = ultraface.detect(getattr(net, detector), on_canvas(image, shape),
                                         size=shape, conf=conf, iou=iou)
        if len(boxes):  # the detector's boxes come back on the CPU; O-Net runs where image is
            _, onet, marks = mtcnn.refine(net.mtcnn, image, boxes.to(image.device))
            keep = onet.cpu() >= verify
            boxes, scores, marks = boxes.cpu()[keep], scores.cpu()[keep], marks.cpu()[keep]
        else:
            marks = torch.zeros(0, 5, 2)
    else:
        raise InputError(f"detector={detector!r}: expected one of {', '.join(DETECTORS)}")
    faces = Faces(boxes.float().cpu(), scores.float().cpu(), marks.float().cpu().reshape(-1, 5, 2))
    keep = (faces.boxes[:, 2] - faces.boxes[:, 0]) >= min_face
    faces = faces.take(keep)
    return faces.take(torch.argsort(faces.scores, descending=True))


def on_canvas(image: torch.Tensor, size: tuple[int, int] = (320, 240)) -> torch.Tensor:
    """A photo smaller than the detector's input both ways, pasted at the top left of a
    grey (127, the detector's zero) canvas of that size; larger photos as they are. The
    network sees a small photo at its own scale instead of stretched to 4:3: a 92x112 ORL
    portrait stretched to 320x240 is a face squashed to half its width. Boxes keep the
    photo's pixel coordinates, since the paste adds no offset."""
    h, w = image.shape[-2:]
    if w > size[0] or h > size[1]:
        return image
    canvas = torch.full((3, size[1], size[0]), 127, dtype=torch.uint8, device=image.device)
    canvas[:, :h, :w] = image
    return canvas


def whole_image_face(net: nn.Module, image: torch.Tensor) -> Faces:
    """O-Net's landmarks for the whole image taken as one face box (a photo that is already
    a face crop, where no detector fires)."""
    h, w = image.shape[-2:]
    box = torch.tensor([[0.0, 0.0, float(w), float(h)]])
    _, scores, marks = mtcnn.refine(net.mtcnn, check_image(image), box.to(image.device))
    return Faces(box, scores.float().cpu().reshape(1), marks.float().cpu().reshape(1, 5, 2))


def describe(net: nn.Module, image: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """Descriptors [N, 128] (float32, CPU) of the faces whose landmarks are given: aligned to
    dlib's 150x150 chip, then the descriptor network."""
    if not len(landmarks):
        return torch.zeros(0, 128)
    chips = align.align(check_image(image).cpu(), landmarks.cpu(), size=CHIP)
    device = next(net.embedder.parameters()).device
    return net.embedder(chips.to(device).float()).float().cpu()
