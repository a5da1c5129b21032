"""The faces task's networks in one module, so one weights file and one card carry them:
two Ultra-Light face detectors (RFB-320 and slim-320), MTCNN (P-, R- and O-Net: a detector
of its own, and O-Net's five landmarks for the boxes of the others) and the 128-d face
descriptor (dlib's ResNet, as face-api ships it). The tasks/faces package runs them; this
module only holds them.

    >>> net = build("face_pipeline")                     # doctest: +SKIP
    >>> net(chips).shape          # aligned 150x150 faces -> [N, 128]   # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from taskzoo.models import MODELS, build

DETECTORS = ("rfb320", "slim320", "mtcnn")  # the submodules that find faces


class FacePipeline(nn.Module):
    """Submodules `rfb320`, `slim320`, `mtcnn` and `embedder`; forward embeds aligned
    face chips (float [N, 3, 150, 150], RGB 0..255) into descriptors [N, 128]."""

    # kept in float32 in a float16 export: MTCNN's stages crop by their own regressions,
    # and float16 weights moved its boxes by up to 3 px on real photos
    export_float32 = ("mtcnn.",)

    def __init__(self) -> None:
        super().__init__()
        self.rfb320 = build("ultraface_rfb")
        self.slim320 = build("ultraface_slim")
        self.mtcnn = build("mtcnn")
        self.embedder = build("face_resnet")

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        return self.embedder(chips)


@MODELS.register("face_pipeline")
def face_pipeline() -> FacePipeline:
    """The detectors, landmarks and descriptor of the faces task, untrained until their
    released weights (`face_pipeline.widerface_dlib`) are loaded."""
    return FacePipeline()
