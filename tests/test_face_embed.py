"""The face descriptor port (models.face_resnet), its weight conversion and face alignment.

The conversion test needs the npm package @vladmandic/face-api 1.7.15 unpacked at
$TASKZOO_FACEAPI_DIR (the folder holding model/); it checks the port against face-api's own
descriptor of a synthetic image, computed once on Node (benchmarks/faces_embed_parity.mjs).
The whole-model parity on 20 real faces is benchmarks/faces_embed_parity.py.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from taskzoo.errors import InputError
from taskzoo.models import build
from taskzoo.tasks.faces.align import TEMPLATE, align, template

ROOT = Path(__file__).resolve().parents[1]

# face-api 1.7.15 on tfjs 4.22.0's CPU backend, the first 8 values of the descriptor of the
# image x[h, w, c] = (3h + 7w + 50c) mod 256 (150x150 RGB); its norm is 1.3507898
FACEAPI_SYNTH_HEAD = [-0.05153551, 0.17405584, 0.08589697, -0.06890383,
                      -0.09123208, -0.03334638, -0.09381264, -0.025332]


def _synthetic_face() -> torch.Tensor:
    h, w, c = torch.meshgrid(torch.arange(150), torch.arange(150), torch.arange(3),
                             indexing="ij")
    return ((3 * h + 7 * w + 50 * c) % 256).float().permute(2, 0, 1)[None]


def _release_module():
    spec = importlib.util.spec_from_file_location(
        "release_faces_embed", ROOT / "benchmarks" / "release_faces_embed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_builder_gives_128_float_descriptors_per_face():
    torch.manual_seed(0)
    net = build("face_resnet").eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 150, 150) * 255)
    assert out.shape == (2, 128) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and not torch.equal(out[0], out[1])
    # the input normalisation is inside: its mean colour is a buffer, not a weight
    assert "mean_rgb" not in net.state_dict()


@pytest.mark.skipif(not os.environ.get("TASKZOO_FACEAPI_DIR"),
                    reason="set TASKZOO_FACEAPI_DIR to the unpacked npm package "
                           "@vladmandic/face-api 1.7.15 to test the weight conversion")
def test_converted_faceapi_weights_give_faceapis_descriptor():
    state = _release_module().faceapi_state(os.environ["TASKZOO_FACEAPI_DIR"])
    assert len(state) == 117 and state["fc.weight"].shape == (128, 256)
    assert state["stem.conv.weight"].shape == (32, 3, 7, 7)
    net = build("face_resnet").eval()
    net.load_state_dict(state, strict=True)
    with torch.inference_mode():
        out = net(_synthetic_face())[0]
    assert out[:8].tolist() == pytest.approx(FACEAPI_SYNTH_HEAD, abs=1e-5)
    assert out.norm().item() == pytest.approx(1.3507898, abs=1e-5)


def test_template_has_level_eyes_and_mouth_symmetric_inside_the_chip():
    pts = template(150, 0.25)
    left_eye, right_eye, nose, left_mouth, right_mouth = pts
    assert left_eye[1] == pytest.approx(right_eye[1], abs=1e-9)
    assert left_mouth[1] == right_mouth[1]
    # symmetric to dlib's 6 printed digits (a few 1e-5 chip pixels)
    axis = (left_eye[0] + right_eye[0]) / 2
    assert axis == pytest.approx(nose[0], abs=1e-4)
    assert axis == pytest.approx((left_mouth[0] + right_mouth[0]) / 2, abs=1e-4)
    # image order: the image-left eye first; eyes above the nose above the mouth
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    assert left_eye[1] < nose[1] < left_mouth[1]
    assert (pts > 0).all() and (pts < 150).all()
    # padding 0.25 shrinks dlib's unit-box mean face into the middle two thirds
    assert template(100, 0.0) == pytest.approx(TEMPLATE * 100)


def _ramp_image(side: int = 256) -> torch.Tensor:
    """Red = column, green = row, blue = 255: a chip's colours tell where it sampled."""
    img = torch.empty(3, side, side, dtype=torch.uint8)
    img[0] = torch.arange(side, dtype=torch.uint8)[None, :]
    img[1] = torch.arange(side, dtype=torch.uint8)[:, None]
    img[2] = 255
    return img


@pytest.mark.parametrize("scale,angle", [(1.3, 0.25), (3.2, -0.15)])  # 3.2 halves first
def test_align_maps_the_landmarks_onto_the_template(scale, angle):
    tpl = template()
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    landmarks = (tpl - tpl.mean(0)) @ (scale * rot).T + np.array([126.0, 131.0])
    chip = align(_ramp_image(), torch.tensor(landmarks)[None])[0].double()
    inside = chip[2] == 255  # pixels whose bilinear footprint lies wholly in the image
    rows, cols = torch.meshgrid(torch.arange(150.0), torch.arange(150.0), indexing="ij")
    design = torch.stack((cols[inside], rows[inside], torch.ones_like(rows[inside])), 1)
    source = torch.stack((chip[0][inside], chip[1][inside]), 1)
    # the affine map chip -> image that the chip's colours record, at the template points
    fit = torch.linalg.lstsq(design.double(), source).solution
    mapped = torch.cat((torch.tensor(tpl), torch.ones(5, 1, dtype=torch.float64)), 1) @ fit
    assert inside.sum() > 5000
    assert (mapped - torch.tensor(landmarks)).abs().max().item() < 0.5


def test_the_same_face_aligned_twice_gives_the_same_descriptor():
    torch.manual_seed(0)
    image = (torch.rand(3, 240, 320) * 255).to(torch.uint8)
    tpl = torch.tensor(template())
    face = tpl * 1.4 + torch.tensor([60.0, 40.0])
    chips = align(image, torch.stack((face, face, face + 30)))
    assert chips.shape == (3, 3, 150, 150) and chips.dtype == torch.uint8
    assert torch.equal(chips[0], chips[1]) and not torch.equal(chips[0], chips[2])
    assert torch.equal(align(image, face[None])[0], chips[0])
    net = build("face_resnet").eval()
    with torch.inference_mode():
        desc = net(chips.float())
    assert torch.equal(desc[0], desc[1])


@pytest.mark.parametrize("landmarks", [
    torch.zeros(5, 2),  # one face without the batch axis
    torch.zeros(1, 4, 2),  # four points
    torch.full((1, 5, 2), float("nan")),
    torch.zeros(1, 5, 2),  # coincident points: no similarity transform
])
def test_bad_landmarks_raise_input_error(landmarks):
    with pytest.raises(InputError, match="align"):
        align(torch.zeros(3, 64, 64, dtype=torch.uint8), landmarks)


def test_a_float_image_raises_input_error_and_no_faces_give_no_chips():
    with pytest.raises(InputError, match="uint8"):
        align(torch.zeros(3, 64, 64), torch.zeros(0, 5, 2))
    empty = align(torch.zeros(3, 64, 64, dtype=torch.uint8), torch.zeros(0, 5, 2))
    assert empty.shape == (0, 3, 150, 150) and empty.dtype == torch.uint8
