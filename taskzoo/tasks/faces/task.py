"""Faces: find every face in a photo or video, align it, and name it against a gallery of
a few photos per person, with pretrained networks and no training (the workflow of
face_recognition, facenet-pytorch and InsightFace).

    taskzoo predict faces photo.jpg --save out/             # boxes, scores, 5 landmarks
    taskzoo predict faces photo.jpg --gallery people/       # + a name and a distance per face
    taskzoo predict faces clip.mp4 --gallery people/ --save out.mp4   # tracked, out.jsonl
    taskzoo run faces                                       # ORL: identification, verification

Networks (one released file, `face_pipeline.widerface_dlib`, each part's source and license
in its card): Ultra-Light-Fast-Generic-Face-Detector-1MB RFB-320 (default) and slim-320,
MTCNN (its own cascade with detector=mtcnn; its O-Net gives the five landmarks of the
others' boxes) and dlib's 128-d ResNet descriptor as face-api ships it. A face is aligned
onto dlib's 150x150 chip by a similarity transform of its landmarks; two faces are one
person when their descriptors lie within `threshold` (Euclidean).

`taskzoo run faces` measures on ORL (40 people x 10 photos) with the image-classification
task's splits (`split_seed`): identification with k = 1, 3, 5 enrolled photos per person
beside eigenfaces + 1-NN on the same photos, verification pairs (ROC AUC; accuracy at the
threshold chosen on the enrolled photos' pairs), and the share of photos in which exactly
one face is found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from taskzoo.config import NonNegativeInt, Probability, Range, RunConfig
from taskzoo.data import images
from taskzoo.errors import ConfigError
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import DataBundle, Reference, Task
from taskzoo.tasks.faces import evaluate as ev
from taskzoo.tasks.faces.predictor import FacesPredictor
from taskzoo.train.types import StepOutput

RELEASED = "face_pipeline.widerface_dlib"  # the networks' released weights


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class FacesConfig(RunConfig):
    dataset: Literal["orl"] = "orl"  # what `taskzoo run faces` measures on (ORL / AT&T faces)
    model: Literal["face_pipeline"] = "face_pipeline"  # detectors, landmarks and descriptor
    init: str = RELEASED  # the networks' weights: a released name or a .safetensors + card
    detector: Literal["rfb320", "slim320", "mtcnn"] = "rfb320"  # what finds the faces
    conf: Probability = 0.7  # Ultra-Light's face score threshold (its published default)
    iou: Probability = 0.3  # NMS IoU threshold (Ultra-Light's default)
    min_face: Annotated[int, Range(4)] = 20  # faces narrower than this many pixels are dropped
    verify: Probability = 0.0  # O-Net face probability an rfb320/slim320 box must reach; 0 = all
    # 320 as the weights were trained; upstream also publishes WIDER FACE figures at 640
    size: Annotated[int, Range(160, 1280)] = 320  # rfb320/slim320 input width (4:3: 320x240)
    # 0.55: the mean of the thresholds tuned on ORL split seeds 100-102 (dlib: 0.6, on LFW)
    threshold: Annotated[float, Range(0, open_lo=True)] = 0.55  # same person within this distance
    split_seed: NonNegativeInt = 0  # ORL: which 5 photos a person are enrolled (image_classification's splits)
    # <= 40: ORL has 40 people; fewer make a quick check
    people: Annotated[int, Range(2, 40)] = 40  # ORL people measured on


@dataclass
class FacesData(DataBundle):
    arrays: np.ndarray | None = None  # ORL faces, uint8 [N, 112, 92]
    targets: np.ndarray | None = None  # person index of each face
    pool: list[int] = field(default_factory=list)  # the split's enrollment photos
    test: list[int] = field(default_factory=list)  # the split's photos to identify


# ---------------------------------------------------------------------------- the task
@TASKS.register("faces", aliases=("face_recognition", "face"))
class Faces(Task[FacesConfig]):
    name = "faces"
    Config = FacesConfig
    description = "find, align and name faces in photos and videos (Ultra-Light, MTCNN, dlib)"
    models = ("face_pipeline",)
    eval_splits = ()
    final_splits = ("test",)
    quick: ClassVar[dict[str, Any]] = {"people": 5}
    weights_fields = ("model",)
    monitor = "test/accuracy_k5"  # the bench's headline (nothing is trained)
    references = (
        Reference("test/accuracy_k5", 0.946, "eigenfaces + 1-NN, image_classification "
                  "dataset=orl (mean of split seeds 0-4, 5 enrolled photos)",
                  note="same splits; a CNN trained on these very people gets 0.999"),
    )

    # -- data
    def build_data(self, state: dict[str, Any] | None = None) -> FacesData:
        c = self.cfg
        faces = images.load_orl()
        keep = np.flatnonzero(faces.labels < c.people)
        labels = faces.labels[keep]
        pool, test = images.per_class_split(labels, 5, c.split_seed)
        return FacesData(train=None, labels=[faces.classes[i] for i in range(c.people)],
                         arrays=faces.arrays[keep], targets=labels, pool=pool, test=test)

    def data_state(self, data: DataBundle) -> dict[str, Any]:
        return {}

    def data_from_state(self, state: dict[str, Any]) -> FacesData:
        return FacesData(train=None)

    def dataset_card(self) -> dict[str, Any]:
        return {"name": "ORL / AT&T faces (measured on; the networks are trained upstream)",
                "files": [], "license": images.LICENSES["orl"]}

    # -- model: pretrained networks, nothing to train
    def build_model(self, data: DataBundle) -> nn.Module:
        if self.cfg.model not in self.models:
            raise ConfigError(f"model={self.cfg.model!r}: expected face_pipeline")
        return build(self.cfg.model)

    def batches(self, data: DataBundle, model: nn.Module) -> None:
        return None

    def step(self, model: nn.Module, batch: Any) -> StepOutput:
        raise NotImplementedError("faces trains nothing: its networks come pretrained")

    # -- evaluate
    def evaluate(self, model: nn.Module, data: FacesData, split: str) -> dict[str, float]:
        c = self.cfg
        faces = [torch.from_numpy(a).expand(3, -1, -1).contiguous() for a in data.arrays]
        found = ev.analyse(model, faces, detector=c.detector, conf=c.conf, iou=c.iou,
                           min_face=c.min_face, verify=c.verify, size=c.size)
        self._found = found
        labels = data.targets
        out = {"test/one_face_share": float(np.mean(found.counts == 1)),
               "test/no_face_share": float(np.mean(found.counts == 0))}
        for k in ev.KS:
            gallery = ev.enrolled(labels, data.pool, k)
            out[f"test/accuracy_k{k}"] = ev.identification(found.descriptors, labels, gallery,
                                                           data.test)[0]
            out[f"test/accuracy_eigenfaces_k{k}"] = ev.eigenfaces(data.arrays, labels, gallery,
                                                                  data.test)
        out.update(ev.verification(found.descriptors, labels, data.pool, data.test, c.split_seed))
        return out

    def reports(self, model: nn.Module, data: FacesData) -> dict[str, str | bytes]:
        from taskzoo.tasks.faces.report import orl_png

        found = getattr(self, "_found", None)
        if found is None or data.arrays is None:
            return {}
        gallery = ev.enrolled(data.targets, data.pool, 5)
        pred = ev.identification(found.descriptors, data.targets, gallery, data.test)[1]
        return {"faces_orl.png": orl_png(data, found, pred)}

    # -- predictor
    def predictor(self, model: nn.Module, data: DataBundle) -> FacesPredictor:
        c = self.cfg
        return FacesPredictor(model, self.runtime, detector=c.detector, conf=c.conf, iou=c.iou,
                              min_face=c.min_face, verify=c.verify, size=c.size,
                              threshold=c.threshold)

    def example_inputs(self, n: int) -> list[Any]:
        faces = images.load_orl()
        return [np.pad(faces.arrays[i % len(faces.arrays)], 40, mode="edge") for i in range(n)]
