"""CIE Lab colour helpers (scikit-image, D65 white, sRGB) for colorization.

    >>> import numpy as np
    >>> rgb = np.array([[[255, 0, 0]]], np.uint8)
    >>> lab = rgb_to_lab(rgb)
    >>> [round(float(v)) for v in lab[0, 0]]
    [53, 80, 67]
    >>> lab_to_rgb(lab)[0, 0].tolist()
    [255, 0, 0]

A colorization model sees the lightness and predicts the colour: `split_lab` turns an RGB
image into the model's input `L` and target `ab`, scaled to about [-1, 1]:

    L_scaled  = L / L_SCALE - L_SHIFT     (L in 0..100 -> -1..1)
    ab_scaled = ab / AB_SCALE             (a, b roughly -110..110 for sRGB -> about -1..1)

and `merge_lab` inverts the scaling and converts back to uint8 RGB. `gray_rgb` is the
image's own grey (its L with a = b = 0) as RGB: the baseline a colorization is compared with,
computed by the same conversion as the model's output so that their PSNRs are comparable.

sRGB's a and b reach about -86..98 and -108..95, so a tanh output times AB_SCALE covers them.
Every function takes `[..., H, W, 3]` (any leading dimensions) unless it says otherwise.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from taskzoo.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["rgb_to_lab", "lab_to_rgb", "gray_rgb", "split_lab", "merge_lab",
           "L_SCALE", "L_SHIFT", "AB_SCALE"]

L_SCALE = 50.0  # L_scaled = L / L_SCALE - L_SHIFT: lightness 0..100 -> -1..1
L_SHIFT = 1.0
AB_SCALE = 110.0  # ab_scaled = ab / AB_SCALE: sRGB's a/b (about -108..98) -> about -1..1


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise InputError(f"{what} expects a uint8 RGB array [..., H, W, 3], got {rgb.dtype} "
                         f"{tuple(rgb.shape)}")
    return rgb


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., H, W, 3] -> float32 Lab [..., H, W, 3] (L 0..100, a/b about -110..110)."""
    from skimage.color import rgb2lab

    rgb = _check_rgb(rgb, "rgb_to_lab")
    return rgb2lab(rgb.astype(np.float64) / 255.0).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float Lab [..., H, W, 3] -> uint8 RGB [..., H, W, 3], out-of-gamut colours clipped.

    L is clipped to 0..100 first; colours outside sRGB (which a model may predict) are
    clipped silently rather than warned about.
    """
    return _to_uint8(_lab_to_float_rgb(lab))


def _lab_to_float_rgb(lab: np.ndarray) -> np.ndarray:
    from skimage.color import lab2rgb

    lab = np.array(lab, dtype=np.float64)  # a copy: L is clipped in place
    if lab.ndim < 3 or lab.shape[-1] != 3:
        raise InputError(f"lab_to_rgb expects a Lab array [..., H, W, 3], got "
                         f"{tuple(lab.shape)}")
    lab = np.nan_to_num(lab, nan=0.0, posinf=0.0, neginf=0.0)
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    with warnings.catch_warnings():  # "negative Z values that have been clipped to zero"
        warnings.simplefilter("ignore", UserWarning)
        return lab2rgb(lab)  # float 0..1, clipped


def _to_uint8(rgb01: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb01 * 255.0), 0, 255).astype(np.uint8)


def gray_rgb(rgb: np.ndarray) -> np.ndarray:
    """The image's lightness alone (a = b = 0) as uint8 RGB [..., H, W, 3], channels equal.

    `lab_to_rgb` of (L, 0, 0), except that the three channels (equal but for ~1e-5 of
    floating-point error in the conversion, which rounding could turn into a 1-level
    difference) are averaged before rounding, so they come out exactly equal.
    """
    lab = rgb_to_lab(rgb)
    lab[..., 1:] = 0.0
    grey = _to_uint8(_lab_to_float_rgb(lab).mean(axis=-1, keepdims=True))
    return np.repeat(grey, 3, axis=-1)


def split_lab(rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 RGB [H, W, 3] -> (L_scaled float32 [1, H, W], ab_scaled float32 [2, H, W]).

    >>> L, ab = split_lab(np.zeros((4, 4, 3), np.uint8))
    >>> L.shape, float(L.min()), ab.shape  # black: L = 0 -> -1
    (torch.Size([1, 4, 4]), -1.0, torch.Size([2, 4, 4]))
    """
    import torch

    rgb = _check_rgb(rgb, "split_lab")
    if rgb.ndim != 3:
        raise InputError(f"split_lab takes one image [H, W, 3], got {tuple(rgb.shape)}")
    lab = torch.from_numpy(np.ascontiguousarray(rgb_to_lab(rgb).transpose(2, 0, 1)))
    return lab[:1] / L_SCALE - L_SHIFT, lab[1:] / AB_SCALE


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def merge_lab(L_scaled: Any, ab_scaled: Any) -> np.ndarray:
    """Invert `split_lab`: L_scaled [B, 1, H, W] and ab_scaled [B, 2, H, W] (tensors or
    arrays) -> uint8 RGB [B, H, W, 3]; one image, [1, H, W] and [2, H, W], gives [H, W, 3].

    L is clipped to 0..100 and the colour to sRGB (see `lab_to_rgb`).
    """
    L, ab = _as_numpy(L_scaled), _as_numpy(ab_scaled)
    if (L.ndim not in (3, 4) or L.ndim != ab.ndim or L.shape[-3] != 1 or ab.shape[-3] != 2
            or L.shape[:-3] != ab.shape[:-3] or L.shape[-2:] != ab.shape[-2:]):
        raise InputError(f"merge_lab expects L [B, 1, H, W] and ab [B, 2, H, W] (or [1, H, W] "
                         f"and [2, H, W]), got {tuple(L.shape)} and {tuple(ab.shape)}")
    lab = np.concatenate([(L + L_SHIFT) * L_SCALE, ab * AB_SCALE], axis=-3)
    return lab_to_rgb(np.moveaxis(lab, -3, -1))
