"""Object detection: FastestDet (published COCO weights, fine-tuned) and yolo_tiny (ours).

    taskzoo run detection                         # PennFudan, fine-tuned from fastestdet.coco
    taskzoo run detection init=none               # the same network from random weights
    taskzoo run detection model=yolo_tiny         # our YOLOv8-style detector, from scratch
    taskzoo run detection model=yolo_tiny backbone=efficientnet_lite0   # on an ImageNet trunk
    taskzoo run detection dataset=coco128         # 80 classes (train = test, by convention)
    taskzoo run detection data=my_set/data.yaml   # your YOLO folder or COCO json
    taskzoo predict detection street.jpg --save out/ conf=0.3
    taskzoo predict detection clip.mp4 --save out.mp4      # tracked, plus out.jsonl

Boxes are xyxy pixels throughout. Metrics are torchmetrics' MeanAveragePrecision (the
pycocotools backend: COCO's own evaluation), NMS is torchvision's. When the starting weights'
classes include every class of the data (COCO's "person" for PennFudan), the network keeps
its whole label set and the data's labels are mapped into it: the head is fine-tuned rather
than replaced, and the zero-shot model is the step-0 point of the same run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from taskzoo.config import Probability, Range, SupervisedConfig
from taskzoo.data.detection import aug
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.errors import ConfigError, DataError
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import DataBundle, Reference
from taskzoo.tasks.common.image_task import ImageTask
from taskzoo.tasks.common.transfer import freeze_batchnorm
from taskzoo.tasks.detection.predictor import DetectionPredictor, unwrap_detector
from taskzoo.tasks.detection.trunk import (
    AUTO,
    DEFAULT_BACKBONE,
    TRUNK_RECIPE,
    check_backbone,
    fix_frozen_batchnorm,
    normalise,
    trunk_spec,
)
from taskzoo.train.types import StepOutput

DATASETS = ("pennfudan", "coco128", "shapes", "folder")
# random weights need more steps and a bolder optimizer than fine-tuning: the recipe of the
# from-scratch runs (init=none, yolo_tiny). No EMA: while weights move this fast, the
# average of BatchNorm's running statistics does not fit the averaged weights (yolo_tiny at
# epoch 45: dev mAP50 0.63 raw, 0.002 for the EMA in eval mode, 0.65 for it on batch stats)
FROM_SCRATCH: dict[str, Any] = {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05,
                                "epochs": 120, "warmup_steps": 100, "augment": "full",
                                "mosaic": 0.5, "ema": 0.0}


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class DetectionConfig(SupervisedConfig):
    # pennfudan (pedestrians), coco128 (80 classes), shapes (tiny, offline) or folder (data=PATH)
    dataset: Literal["pennfudan", "coco128", "shapes", "folder"] = "pennfudan"
    data: str = ""  # your data: an Ultralytics data yaml (or its folder) or a COCO json
    model: str = "fastestdet"  # fastestdet or yolo_tiny
    # a zoo classifier with maps at strides 8/16/32 (csp_darknet, efficientnet_lite0/1/2, ...)
    backbone: str = DEFAULT_BACKBONE  # yolo_tiny's trunk
    # auto: the backbone's released ImageNet card (efficientnet_lite0.imagenet) if any, else random
    backbone_init: str = AUTO  # yolo_tiny's trunk weights: auto, none, a weights name or file
    backbone_lr: Annotated[float, Range(0)] = 1.0  # the trunk's learning rate, times lr
    freeze_at: Annotated[int, Range(0)] = 0  # the trunk's first N layer groups never train
    image_size: Annotated[int, Range(64, 1280)] = 352  # square network input, a multiple of 32
    resize: Literal["stretch", "letterbox"] = "stretch"  # to the square: FastestDet stretches
    augment: Literal["none", "light", "full"] = "light"  # scale/shift jitter, flips, colour
    mosaic: Probability = 0.0  # probability of a 2x2 mosaic of training images
    pretrained_backbone: bool = False  # fastestdet from scratch: start from its ShuffleNetV2
    freeze_bn: bool = False  # keep BatchNorm statistics as the starting weights have them
    dev_images: Annotated[int, Range(0)] = 20  # pennfudan/folder: training images kept for dev
    split_seed: Annotated[int, Range(0)] = 0  # which training images are dev
    conf: Probability = 0.25  # score threshold of predictions and pictures
    iou: Probability = 0.45  # NMS IoU threshold
    eval_conf: Probability = 0.001  # score threshold when measuring mAP (COCO practice)
    # <= 1000: boxes kept per image are scored and drawn one by one
    max_det: Annotated[int, Range(1, 1000)] = 100  # boxes kept per image (COCO's maxDets)
    workers: Annotated[int, Range(-1)] = -1  # loader processes; -1 = by the number of cores
    channels_last: bool = True  # NHWC layout: FastestDet's depthwise convs run ~4x faster on CPU
    optimizer: Literal["adamw", "adam", "sgd"] = "sgd"  # torch.optim class
    lr: float = 3e-4  # peak learning rate
    momentum: float = 0.937  # sgd momentum
    nesterov: bool = True  # sgd: Nesterov momentum
    weight_decay: float = 5e-4  # L2 on weights
    decay_1d: bool = False  # no weight decay on biases and BatchNorm weights
    schedule: Literal["constant", "linear", "cosine"] = "cosine"  # lr after warm-up
    warmup_steps: int = 50  # linear warm-up steps
    epochs: int = 60  # passes over the training images
    batch_size: int = 16  # images per step
    keep: Literal["best", "last"] = "best"  # weights the run delivers: best dev mAP or last
    ema: float = 0.995  # EMA of the weights: what is evaluated and delivered
    # <= 8192: a batch is padded and held in memory at once
    eval_batch_size: Annotated[int, Range(1, 8192)] = 16  # images per evaluation batch


@dataclass
class DetectionData(DataBundle):
    classes: list[str] = field(default_factory=list)  # the data's own class names
    label_map: list[int] = field(default_factory=list)  # data class id -> model label id
    size: int = 352  # network input side
    resize: str = "stretch"  # how images become squares
    name: str = ""  # what the data is, for a weights card
    files: list[Any] = field(default_factory=list)  # pinned files, for a weights card
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable files left out
    source: Any = None  # the dataset the splits index (DetectionSet or ShapesSet)
    # pixels (x / 255) normalised per channel as a pretrained trunk expects; empty: x / 255
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------- the task
@TASKS.register("detection", aliases=("detect", "object_detection"))
class Detection(ImageTask[DetectionConfig]):
    name = "detection"
    Config = DetectionConfig
    description = "objects in images and videos (PennFudan, coco128, your data); FastestDet, yolo_tiny"
    dev_metric = "dev/map"
    models = ("fastestdet", "yolo_tiny")
    init_reinit_mismatched = True  # your own classes: a new class layer, the rest kept
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "pennfudan": {"init": "fastestdet.coco"},
        # your data and coco128 start from the COCO weights too (init=none: from scratch)
        "coco128": {"dev_images": 0, "init": "fastestdet.coco"},
        "shapes": {"image_size": 128, "epochs": 30, "batch_size": 16, "warmup_steps": 10,
                   "optimizer": "adamw", "lr": 3e-3, "dev_images": 16},
        "folder": {"init": "fastestdet.coco"},
    }
    quick: ClassVar[dict[str, Any]] = {"dataset": "shapes", "epochs": 2}
    references = (
        Reference("test/map", 0.646, "FastestDet's COCO weights zero-shot on PennFudan test, "
                  "original code and torchmetrics (calibrated here)", "no fine-tuning"),
        Reference("test/map", 0.187, "FastestDet's COCO weights on coco128, original code "
                  "(calibrated here)", "coco128: train = test by convention"),
    )

    @classmethod
    def implied_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        from taskzoo.config import init_spec

        out: dict[str, Any] = {"dataset": "folder"} if overrides.get("data") else {}
        # the pennfudan preset starts from fastestdet.coco; another network starts afresh
        if overrides.get("model", "fastestdet") != "fastestdet" and "init" not in overrides:
            out["init"] = ""
        fresh = "init" in out or ("init" in overrides and not init_spec(overrides["init"]))
        if fresh and overrides.get("dataset", "folder" if overrides.get("data") else
                                   "pennfudan") != "shapes":
            # a pretrained trunk under a fresh neck and head: its own, shorter recipe
            trunk = trunk_spec(overrides.get("model", "fastestdet"),
                               overrides.get("backbone", DEFAULT_BACKBONE),
                               overrides.get("backbone_init", AUTO))
            out.update(TRUNK_RECIPE if trunk else FROM_SCRATCH)
        return out

    # -- data
    def _source(self) -> tuple[Any, dict[str, list[int]], str, list[Any]]:
        """(dataset, {split: indices}, a name, pinned files)."""
        from taskzoo.data.detection import datasets as det
        from taskzoo.data.detection.files import load_detection_data
        from taskzoo.data.vision import random_split

        c = self.cfg
        if c.dataset == "pennfudan":
            data = det.load_pennfudan()
            split = det.pennfudan_split([p.name for p in data.paths], dev=c.dev_images,
                                        seed=c.split_seed)
            return data, split, "PennFudanPed (train 100 / dev 20 / test 50)", []
        if c.dataset == "coco128":
            data = det.load_coco128()
            every = list(range(len(data)))
            return (data, {"train": every, "test": every},
                    "coco128 (128 COCO train2017 images; train = test by convention)", [])
        if c.dataset == "shapes":
            data = aug.ShapesSet(96, seed=c.split_seed)
            train, test = random_split(len(data), 0.25, 0)
            keep, dev = random_split(len(train), c.dev_images / len(train), c.split_seed + 1)
            return (data, {"train": [train[i] for i in keep], "dev": [train[i] for i in dev],
                           "test": test}, data.name, [])
        if not c.data:
            raise DataError("dataset=folder needs data=PATH (an Ultralytics data yaml or its "
                            "folder, or a COCO json)")
        found = load_detection_data(Path(c.data).expanduser())
        return self._user_splits(found)

    def _user_splits(self, found: dict[str, Any]) -> tuple[Any, dict[str, list[int]], str, list]:
        """One dataset of the user's splits (train, and val/test when given): val is dev and
        test is test; without val, `dev_images` of train are held out."""
        from taskzoo.data.detection.datasets import DetectionSet
        from taskzoo.data.vision import random_split

        c = self.cfg
        names = [k for k in ("train", "val", "test") if k in found]
        if "train" not in found:
            raise DataError(f"data={c.data}: no training split found (got {', '.join(names)})")
        parts = [found[k] for k in names]
        merged = DetectionSet(paths=[p for s in parts for p in s.paths],
                              boxes=[b for s in parts for b in s.boxes],
                              labels=[lab for s in parts for lab in s.labels],
                              classes=list(found["train"].classes),
                              sizes=[z for s in parts for z in s.sizes],
                              name=f"your data in {c.data}",
                              skipped=[x for s in parts for x in s.skipped])
        start, index = 0, {}
        for k, s in zip(names, parts):
            index[{"val": "dev"}.get(k, k)] = list(range(start, start + len(s)))
            start += len(s)
        name = merged.name
        if "dev" not in index and c.dev_images:
            n = len(index["train"])
            if n < 3:  # random_split holds none out of 2 or fewer
                raise DataError(f"data={c.data}: no val split and only {n} readable training "
                                f"image{'s' if n != 1 else ''}: too few to hold any out as "
                                f"dev (3 or more needed); add a val split, or set "
                                f"dev_images=0 to train without dev")
            # at most half of train: n // 2, not round(n / 2), which is 2 of 3
            keep, dev = random_split(n, min(c.dev_images, n // 2) / n, c.split_seed)
            index["dev"] = [index["train"][i] for i in dev]
            index["train"] = [index["train"][i] for i in keep]
            held = (f"no val split: {len(dev)} of the {n} training images held out as dev "
                    f"(dev_images={c.dev_images}, split_seed={c.split_seed})")
            name = f"{name} ({held})"
            if os.environ.get("RANK", "0") == "0":  # once, not once per torchrun process
                print(f"taskzoo: {c.data}: {held}", file=sys.stderr)
        return merged, index, name, []

    def build_data(self, state: dict[str, Any] | None = None) -> DetectionData:
        c = self.cfg
        if c.image_size % 32:
            raise ConfigError(f"image_size={c.image_size}: expected a multiple of 32 "
                              f"(e.g. {max(64, round(c.image_size / 32) * 32)})")
        self._backbone = check_backbone(c.model, c.backbone, c.backbone_init)  # before the data
        data, index, name, files = self._source()
        classes = list(data.classes)
        # starting weights whose labels cover the data's: keep their label set (see the doc)
        labels = classes
        if state and set(classes) <= set(state.get("labels", [])):
            labels = list(state["labels"])
        label_map = [labels.index(k) for k in classes]
        cache = aug.decode_all(data, [j for v in index.values() for j in v])
        splits = {k: aug.DetectionExamples(data, v, label_map, cache)
                  for k, v in index.items() if v}
        train = splits.pop("train")
        if sum(train.num_boxes(i) for i in range(len(train))) == 0:
            raise DataError(f"{name}: the training images hold no boxes; nothing to learn")
        self._data = DetectionData(train=train, splits=splits, labels=labels, classes=classes,
                                   label_map=label_map, size=c.image_size, resize=c.resize,
                                   name=name, files=files, skipped=list(data.skipped),
                                   source=data)
        self._data.mean, self._data.std = self._pixel_stats(state)
        return self._data

    def _trunk(self) -> str:
        """The weights backbone_init= fills yolo_tiny's trunk from; "" for none, and none
        when init= gives the whole network."""
        from taskzoo.config import init_spec

        c = self.cfg
        return "" if init_spec(c.init) else trunk_spec(c.model, c.backbone, c.backbone_init)

    def _pixel_stats(self, state: dict[str, Any] | None) -> tuple[list[float], list[float]]:
        """The per-channel (mean, std) the starting weights expect: init='s data state's,
        else the pretrained trunk's; ([], []) for plain x / 255."""
        self._trunk_tensors = None
        source = state or {}
        if not source.get("mean") and self._trunk():
            from taskzoo.tasks.detection.trunk import trunk_source

            self._trunk_name, self._trunk_tensors, source = trunk_source(self._trunk(),
                                                                         self._backbone)
        mean, std = list(source.get("mean") or []), list(source.get("std") or [])
        if mean and (len(mean) != 3 or len(std) != 3):
            raise ConfigError(f"the starting weights' mean {mean} and std {std}: expected "
                              f"three of each (RGB)")
        return [float(v) for v in mean], [float(v) for v in std]

    def batches(self, data: DetectionData, model: nn.Module) -> LoaderSource:
        c = self.cfg
        tf = aug.TrainTransform(size=data.size, resize=data.resize, augment=c.augment,
                                mosaic=c.mosaic, examples=data.train)
        return self.loader(data.train, collate=aug.collate, transform=tf,
                           workers=self._workers(data))

    def in_memory(self, data: Any) -> bool:
        return data.train.cache is not None or isinstance(data.source, aug.ShapesSet)

    # -- model
    def build_model(self, data: DetectionData) -> nn.Module:
        c = self.cfg
        model = build(c.model, num_classes=len(data.labels),
                      **({"backbone": c.backbone} if c.model == "yolo_tiny" else {}))
        if c.pretrained_backbone and data.train is not None:  # not when rebuilt to predict
            from taskzoo.weights.thirdparty import shufflenetv2_state

            if not hasattr(model, "backbone") or c.model != "fastestdet":
                raise ConfigError("pretrained_backbone=true is for model=fastestdet (its "
                                  "ShuffleNetV2 weights)")
            model.backbone.load_state_dict(shufflenetv2_state(), strict=True)
        if c.model == "yolo_tiny":
            self._init_trunk(model, data)
        return model

    def _init_trunk(self, model: nn.Module, data: DetectionData) -> None:
        """yolo_tiny's trunk: its pretrained tensors (read by build_data, not when rebuilt
        to predict), its frozen layer groups, and its learning rate."""
        from taskzoo.tasks.detection.trunk import freeze_trunk, load_trunk
        from taskzoo.train.optim import scale_lr

        c = self.cfg
        if data.train is not None and getattr(self, "_trunk_tensors", None) is not None:
            self.trunk_left_out = load_trunk(model.backbone, self._trunk_tensors,
                                             self._trunk_name)
            self._trunk_tensors = None  # held once: the model has them now
        if c.backbone_lr != 1.0:  # unmarked otherwise: the optimizer's groups as before
            scale_lr(model.backbone, c.backbone_lr)
        freeze_trunk(model.backbone, c.freeze_at, name=c.backbone)

    def _images(self, images: torch.Tensor, data: DetectionData | None = None) -> torch.Tensor:
        d = data if data is not None else self._data
        x = normalise(images, d.mean, d.std) if d is not None else images.float() / 255
        return x.contiguous(memory_format=torch.channels_last) if self.runtime.channels_last \
            else x

    # -- step
    def step(self, model: nn.Module, batch: tuple[torch.Tensor, list[dict]]) -> StepOutput:
        images, targets = batch
        if self.cfg.freeze_bn:  # the Trainer put the model in train mode: not its BN layers
            freeze_batchnorm(model)
        elif self.cfg.freeze_at:  # nor those of the trunk's frozen layers
            fix_frozen_batchnorm(model)
        outputs = model(self._images(images))
        loss, parts = unwrap_detector(model).loss(outputs, targets)
        return StepOutput(loss, size=len(images), logs=parts)

    # -- evaluate
    def predict_split(self, model: nn.Module, data: DetectionData, split: str, *,
                      conf: float | None = None) -> tuple[list[dict], list[dict]]:
        """(predictions, ground truth) per image of `split`, in the original pixels and the
        data's own class ids; predictions of labels outside the data are dropped."""
        c = self.cfg
        net = unwrap_detector(model)
        # model label -> the data's class id, -1 for labels the data does not have
        to_data = torch.full((len(data.labels),), -1, dtype=torch.int64)
        to_data[torch.as_tensor(data.label_map)] = torch.arange(len(data.label_map))
        examples = data.splits[split]
        tf = aug.EvalTransform(size=data.size, resize=data.resize)
        preds: list[dict] = [{}] * len(examples)
        gold: list[dict] = [{}] * len(examples)
        for idx, (images, targets) in eval_batches(examples, batch_size=c.eval_batch_size,
                                                   collate=aug.collate, transform=tf,
                                                   workers=self._workers(data, training=False)):
            out = net.decode(model(self._images(self.runtime.to_device(images), data)),
                             conf=c.eval_conf if conf is None else conf, iou=c.iou,
                             max_det=c.max_det)
            for i, d, t in zip(idx, out, targets):
                sx, sy = t["scale"]
                lab = to_data[d["labels"].cpu()]
                keep = lab >= 0
                preds[i] = {"boxes": d["boxes"].float().cpu()[keep] / torch.tensor([sx, sy, sx, sy]),
                            "scores": d["scores"].float().cpu()[keep], "labels": lab[keep]}
                gold[i] = {"boxes": t["orig_boxes"].float(), "labels": to_data[t["labels"]]}
        return preds, gold

    def _map(self, preds: list[dict], gold: list[dict], **kw: Any) -> dict[str, Any]:
        from torchmetrics.detection import MeanAveragePrecision

        metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools",
                                      max_detection_thresholds=[1, 10, self.cfg.max_det], **kw)
        metric.update(preds, gold)
        return metric.compute()

    def evaluate(self, model: nn.Module, data: DetectionData, split: str) -> dict[str, float]:
        import contextlib
        import io

        preds, gold = self.predict_split(model, data, split)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
            r = self._map(preds, gold)
        out = {f"{split}/{k}": float(r[src]) for k, src in
               (("map", "map"), ("map50", "map_50"), ("map75", "map_75"),
                ("map_small", "map_small"), ("map_medium", "map_medium"),
                ("map_large", "map_large"), ("mar100", f"mar_{self.cfg.max_det}"))}
        out[f"{split}/boxes_per_image"] = float(np.mean([len(p["boxes"]) for p in preds]))
        return out

    def reports(self, model: nn.Module, data: DetectionData) -> dict[str, str | bytes]:
        from taskzoo.tasks.detection.report import detection_reports

        return detection_reports(self, model, data)

    # -- predictor
    def predictor(self, model: nn.Module, data: DetectionData) -> DetectionPredictor:
        c = self.cfg
        return DetectionPredictor(model, self.runtime, labels=data.labels, size=data.size,
                                  resize=data.resize, conf=c.conf, iou=c.iou, max_det=c.max_det,
                                  batch_size=c.eval_batch_size, mean=data.mean, std=data.std)

    def data_state(self, data: DetectionData) -> dict[str, Any]:
        out = {"labels": data.labels, "size": data.size, "resize": data.resize}
        if data.mean:  # only a pretrained trunk's: x / 255 runs keep their state as it was
            out.update(mean=list(data.mean), std=list(data.std))
        return out

    def data_from_state(self, state: dict[str, Any]) -> DetectionData:
        # a state without mean/std (earlier runs, the released weights): plain x / 255
        return DetectionData(train=None, labels=list(state["labels"]), size=int(state["size"]),
                             resize=str(state["resize"]),
                             mean=[float(v) for v in state.get("mean") or []],
                             std=[float(v) for v in state.get("std") or []])

    def example_inputs(self, n: int) -> list[Any]:
        shapes = aug.ShapesSet(max(1, n), seed=1)
        return [shapes.arrays[i % len(shapes)] for i in range(n)]

    def dataset_card(self) -> dict[str, Any]:
        from taskzoo.data.detection.datasets import DETECTION_LICENSES

        data = self._data
        return {"name": data.name if data else self.cfg.dataset,
                "files": data.files if data else [],
                "license": DETECTION_LICENSES.get(self.cfg.dataset, "the user's own")}
