"""Detection from scratch against Ultralytics: taskzoo's `yolo_tiny` beside YOLOv8n, both from
random weights, on the same PennFudan split, image size and wall-clock budget.

    python benchmarks/detection_vs_ultralytics.py [--minutes 15] [--ours RUN_DIR] [--json F]
    python benchmarks/detection_vs_ultralytics.py --quick       # shapes, seconds: a smoke test

taskzoo trains with `taskzoo run detection model=yolo_tiny` (its from-scratch recipe), or
`--ours` names a finished run directory of it. Ultralytics trains `yolov8n.yaml` (no
pretrained weights) on the same 100 training images, 20 dev images as its val set, at
352 px, batch 16, on the CPU, stopped by its own `time=` budget. Both are then scored the
same way on the 50 test images: predictions at confidence 0.001 (each library's own NMS,
IoU 0.45 vs Ultralytics' 0.7 default kept), torchmetrics' MeanAveragePrecision with the
pycocotools backend, in the original pixels. Ultralytics is a peer: install it for this run
only (`pip install ultralytics`); it needs OpenCV.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import taskzoo
from taskzoo.bench.peers import peer_row, write_report


def yolo_folder(task: Any, data: Any, root: Path) -> Path:
    """The run's train/dev/test images as an Ultralytics dataset (PNG + YOLO txt + yaml)."""
    from PIL import Image

    to_data = {m: k for k, m in enumerate(data.label_map)}
    for split, examples in (("train", data.train), *data.splits.items()):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(len(examples)):
            image, target = examples[i]
            pic = image.permute(1, 2, 0).numpy()
            h, w = pic.shape[:2]
            Image.fromarray(pic).save(root / "images" / split / f"{i:04d}.png")
            lines = [f"{to_data[int(c)]} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} "
                     f"{(b[2] - b[0]) / w:.6f} {(b[3] - b[1]) / h:.6f}"
                     for b, c in zip(target["boxes"].tolist(), target["labels"].tolist())]
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    names = ", ".join(data.classes)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/dev\n"
                                    f"test: images/test\nnames: [{names}]\n")
    return root / "data.yaml"


def score(preds: list[dict], gold: list[dict]) -> dict[str, float]:
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", backend="pycocotools")
    metric.update(preds, gold)
    with contextlib.redirect_stdout(io.StringIO()):
        r = metric.compute()
    return {"map": float(r["map"]), "map50": float(r["map_50"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget of each side")
    ap.add_argument("--ours", help="a finished `taskzoo run detection model=yolo_tiny` directory")
    ap.add_argument("--quick", action="store_true", help="shapes, a few steps: a smoke test")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from taskzoo.api import load_run, make_config
    from taskzoo.runtime import Runtime
    from taskzoo.tasks import get_task

    overrides: dict[str, Any] = {"model": "yolo_tiny", "device": args.device}
    if args.quick:
        overrides.update(dataset="shapes", epochs=2)
    with tempfile.TemporaryDirectory(prefix="taskzoo-det-peer-") as tmp:
        tmp_path = Path(tmp)
        os.environ["YOLO_CONFIG_DIR"] = str(tmp_path / "ultralytics")
        task_cls = get_task("detection")
        cfg = make_config(task_cls, overrides)
        task = task_cls(cfg, Runtime.create(device="cpu", channels_last=True))
        data = task.build_data()
        yaml_path = yolo_folder(task, data, tmp_path / "set")

        t0 = time.perf_counter()
        if args.ours:
            run_dir = Path(args.ours)
        else:
            run_dir = tmp_path / "ours"
            taskzoo.run("detection", out=run_dir, progress=False, **overrides)
        ours_s = time.perf_counter() - t0
        det = load_run(run_dir, device=args.device, conf=0.001)
        det.max_det = 100

        from ultralytics import YOLO  # the peer, installed for this run

        peer = YOLO("yolov8n.yaml")
        t0 = time.perf_counter()
        budget = dict(epochs=2) if args.quick else dict(epochs=1000, time=args.minutes / 60)
        with contextlib.redirect_stdout(io.StringIO()):
            peer.train(data=str(yaml_path), imgsz=cfg.image_size, batch=cfg.batch_size,
                       device=args.device, workers=2, pretrained=False, amp=False, plots=False,
                       project=str(tmp_path / "ul"), name="run", exist_ok=True, verbose=False,
                       **budget)
        peer_s = time.perf_counter() - t0

        test = data.splits["test"]
        images = [test[i][0].permute(1, 2, 0).numpy() for i in range(len(test))]
        to_data = {m: k for k, m in enumerate(data.label_map)}
        gold = [{"boxes": test[i][1]["boxes"].as_subclass(torch.Tensor),
                 "labels": torch.tensor([to_data[int(c)] for c in test[i][1]["labels"]])}
                for i in range(len(test))]
        ours_pred = []
        for out in det(images):
            ids = [data.classes.index(n) for n in out["labels"]]
            ours_pred.append({"boxes": torch.tensor(out["boxes"]).reshape(-1, 4),
                              "scores": torch.tensor(out["scores"]),
                              "labels": torch.tensor(ids, dtype=torch.int64)})
        peer_pred = []
        for img in images:
            r = peer.predict(np.ascontiguousarray(img[..., ::-1]), imgsz=cfg.image_size,
                             conf=0.001, device=args.device, verbose=False, max_det=100)[0]
            peer_pred.append({"boxes": r.boxes.xyxy.cpu(), "scores": r.boxes.conf.cpu(),
                              "labels": r.boxes.cls.cpu().long()})
        ours, theirs = score(ours_pred, gold), score(peer_pred, gold)

    name = "shapes" if args.quick else "PennFudan"
    rows = [peer_row(f"yolo_tiny vs YOLOv8n {name} test mAP", ours["map"], theirs["map"], "mAP",
                     "higher", ">= 0.8"),
            peer_row(f"yolo_tiny vs YOLOv8n {name} test mAP50", ours["map50"], theirs["map50"],
                     "mAP50", "higher", ">= 0.8")]
    setup = (f"from scratch, {name}, {cfg.image_size} px, batch {cfg.batch_size}, "
             f"{args.device}; taskzoo {ours_s / 60:.1f} min, Ultralytics {peer_s / 60:.1f} min")
    print(setup)
    for r in rows:
        print(f"{r['comparison']}: {r['taskzoo']:.4f} vs {r['peer']:.4f} ({r['ratio']:.3g}x)")
    write_report(args.json, setup, rows)


if __name__ == "__main__":
    main()
