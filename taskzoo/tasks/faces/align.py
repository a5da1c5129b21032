"""Face alignment: 5 landmarks -> the 150x150 face chip dlib's face descriptor expects.

The recogniser (`models.face_resnet`, dlib's ResNet) was trained on chips cut by dlib's
`get_face_chip_details(shape, 150, 0.25)`: a similarity transform that puts the landmarks
of a face where dlib's mean face shape lies in the chip. That mean shape is dlib's
`mean_face_shape_x/y` (dlib/image_transforms/interpolation.h; the iBUG 68-point points
17..67 in a unit box), and dlib maps it into the chip as `(padding + p) / (1 + 2 padding) *
size`. The detectors here give 5 points, so `TEMPLATE` is those 5 points of the mean shape:

    eye on the image's left   mean of points 36..41  (0.2254918, 0.2159903)
    eye on the image's right  mean of points 42..47  (0.7547613, 0.2159903)
    nose tip                  point 30               (0.4901270, 0.5156250)
    mouth corner, image left  point 48               (0.2541490, 0.7802330)
    mouth corner, image right point 54               (0.7261040, 0.7802330)

The nose is point 30, the tip, not 33 (the base between the nostrils, which dlib's own
5-point model marks): MTCNN, YuNet and RetinaFace label the tip, and their standard
template (InsightFace's 112x112 one) puts the nose 0.49 of the way from the eyes to the
mouth, as point 30 does here (0.53) and point 33 does not (0.73). The mean shape is
symmetric about x = 0.490127 (to dlib's 6 printed digits: the eyes' midpoint is 0.4901266),
the eyes are level and so are the mouth corners.

Order and sides: landmarks are ordered by the *image*: the eye on the left of the image
(the subject's right eye) first, then the eye on the right, the nose, the mouth corner on
the left of the image, the one on the right. That is the order MTCNN, YuNet and InsightFace
return. Coordinates are pixels, x to the right and y down, (0, 0) the centre of the top-left
pixel (dlib's and scikit-image's convention).

The warp: scikit-image estimates the least-squares similarity (Umeyama) from the chip
template to the landmarks; the chip is then sampled bilinearly with torch's grid_sample,
zeros outside the image. Where the face is more than twice the chip's size, the image is
first halved by 2x2 averages until the remaining scale is at most 2, as dlib's
`extract_image_chips` uses an image pyramid (dlib's is a 5-tap Gaussian one), so that a
large face is not sampled like nearest neighbour.

    >>> img = torch.zeros(3, 200, 200, dtype=torch.uint8)
    >>> tuple(align(img, torch.as_tensor(template(100, 0.0) + 50)[None]).shape)
    (1, 3, 150, 150)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from taskzoo.errors import InputError

# dlib's mean face at the five points above, in a unit box (x, y): see the module docstring
TEMPLATE = np.array([
    # eye on the image's left: mean of points 36..41
    [(0.121737 + 0.187122 + 0.265825 + 0.334606 + 0.260918 + 0.182743) / 6,
     (0.216423 + 0.178758 + 0.179852 + 0.231733 + 0.245099 + 0.244077) / 6],
    # eye on the image's right: mean of points 42..47
    [(0.645647 + 0.714428 + 0.793132 + 0.858516 + 0.79751 + 0.719335) / 6,
     (0.231733 + 0.179852 + 0.178758 + 0.216423 + 0.244077 + 0.245099) / 6],
    [0.49012700, 0.51562500],  # nose tip: point 30
    [0.25414900, 0.78023300],  # mouth corner on the image's left: point 48
    [0.72610400, 0.78023300],  # mouth corner on the image's right: point 54
])


def template(size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The 5 template points in chip pixels [5, 2] (x, y), as dlib's face chip places them."""
    return (TEMPLATE + padding) / (1 + 2 * padding) * size


def _check(image: torch.Tensor, landmarks: torch.Tensor, size: int, padding: float) -> None:
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3 \
            or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"align: image must be a uint8 tensor [3, H, W] (RGB), got {shape} "
                         f"{getattr(image, 'dtype', '')}")
    if landmarks.ndim != 3 or tuple(landmarks.shape[1:]) != (5, 2):
        raise InputError(f"align: landmarks must be [K, 5, 2] (eyes, nose, mouth corners as "
                         f"x, y pixels), got {tuple(landmarks.shape)}")
    if not torch.isfinite(landmarks).all():
        raise InputError("align: landmarks hold NaN or infinite values; all must be finite")
    if size < 1 or padding < 0:
        raise InputError(f"align: size must be >= 1 and padding >= 0, got {size}, {padding}")


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """The 3x3 least-squares similarity taking `src` to `dst`, None where it is degenerate."""
    from skimage.transform import SimilarityTransform  # on first use: listing tasks stays light

    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = SimilarityTransform.from_estimate(src, dst)
        params = tform.params if tform else None
    else:
        tform = SimilarityTransform()
        params = tform.params if tform.estimate(src, dst) else None
    if params is None or not np.isfinite(params).all() or abs(np.linalg.det(params)) < 1e-12:
        return None
    return params


def _level(levels: list[torch.Tensor], depth: int) -> torch.Tensor:
    """The image halved `depth` times by 2x2 averages (built on demand, kept in `levels`)."""
    while len(levels) <= depth:
        levels.append(F.avg_pool2d(levels[-1], 2, 2))
    return levels[depth]


def _warp(levels: list[torch.Tensor], chip_to_image: np.ndarray, size: int) -> torch.Tensor:
    scale = math.sqrt(abs(np.linalg.det(chip_to_image[:2, :2])))
    depth = max(0, math.ceil(math.log2(scale)) - 1) if scale > 1 else 0
    source = _level(levels, depth)
    f = 2.0 ** depth
    # pixel centre x of the full image lies at (x - (f - 1) / 2) / f in the halved one
    to_level = np.array([[1 / f, 0, -(f - 1) / (2 * f)], [0, 1 / f, -(f - 1) / (2 * f)],
                         [0, 0, 1]])
    m = torch.as_tensor((to_level @ chip_to_image)[:2], dtype=torch.float64)
    r, c = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                          torch.arange(size, dtype=torch.float64), indexing="ij")
    xy = torch.stack((c, r, torch.ones_like(c)), -1) @ m.T  # [size, size, 2] source pixels
    h, w = source.shape[-2:]
    # align_corners=True: -1 and +1 are the centres of the first and last pixels
    grid = torch.stack((2 * xy[..., 0] / max(w - 1, 1) - 1, 2 * xy[..., 1] / max(h - 1, 1) - 1),
                       -1)
    return F.grid_sample(source, grid[None].float(), mode="bilinear", padding_mode="zeros",
                         align_corners=True)[0]


def align(image: torch.Tensor, landmarks: torch.Tensor, *, size: int = 150,
          padding: float = 0.25) -> torch.Tensor:
    """Cut one aligned face chip per face: uint8 [K, 3, size, size].

    `image` is uint8 [3, H, W] RGB; `landmarks` [K, 5, 2] are (x, y) pixels ordered by the
    image (left eye on the image, right eye, nose tip, left mouth corner, right one; see the
    module docstring). Raises InputError for other shapes, non-finite or degenerate
    (coincident) landmarks."""
    landmarks = torch.as_tensor(landmarks)
    _check(image, landmarks, size, padding)
    if len(landmarks) == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    dst_all = landmarks.detach().cpu().double().numpy()
    src = template(size, padding)
    levels = [image.detach().cpu().float()[None]]
    chips = []
    for k, dst in enumerate(dst_all):
        chip_to_image = _similarity(src, dst)
        if chip_to_image is None:
            raise InputError(f"align: the landmarks of face {k} are degenerate (coincident "
                             "points); five distinct points are needed")
        chips.append(_warp(levels, chip_to_image, size))
    return torch.stack(chips).round_().clamp_(0, 255).to(torch.uint8)
