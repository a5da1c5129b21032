"""Release the published FastestDet COCO weights as `fastestdet.coco` (safetensors + card).

    TASKZOO_MIRROR=../shared/data python benchmarks/release_fastestdet.py [--out taskzoo/released]

The upstream `.pth` comes through the hub (pinned by sha256) and is read with
`torch.load(weights_only=True)`; it loads strictly into `models.fastestdet`. A run directory
is written for it (config, labels, the weights, the figures measured on coco128 here), and
`taskzoo export` turns that into the release, measuring the exported file again. The card
then names the weights' source, commit and license (BSD-3-Clause) and says that they were
trained upstream on COCO train2017, not here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from taskzoo.api import make_config
from taskzoo.runtime import Runtime
from taskzoo.tasks import get_task
from taskzoo.weights import thirdparty as pretrained

sys.path.insert(0, str(Path(__file__).parent))
from release_common import export_converted, write_card  # noqa: E402

NOTES = ("Third-party weights: FastestDet by dog-qiuqiu (xuehao.ma), "
         f"{pretrained.FASTESTDET_REPO} at commit {pretrained.FASTESTDET_COMMIT}, file "
         "weights/weight_AP05:0.253207_280-epoch.pth (sha256 "
         f"{pretrained.FASTESTDET_COCO.sha256}), BSD-3-Clause. Trained upstream on COCO "
         "train2017 (published AP50 0.253 on val2017); converted here to safetensors without "
         "changing a value. The metrics are measured here on coco128, whose images are COCO "
         "train2017 images (train = test by convention): they are not a held-out score.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "taskzoo" / "released"))
    args = ap.parse_args()
    task_cls = get_task("detection")
    cfg = make_config(task_cls, {"dataset": "coco128", "model": "fastestdet", "init": "",
                                 "device": "cpu"})
    runtime = Runtime.create(device="cpu", precision="32")
    task = task_cls(cfg, runtime)
    data = task.build_data()
    model = task.build_model(data)
    model.load_state_dict(pretrained.fastestdet_coco_state(), strict=True)
    model.eval()
    weights, card_path = export_converted(task, data, model, name="fastestdet.coco",
                                          dtype="float32", out=args.out, notes=NOTES)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["dataset"] = {
        "name": "COCO 2017 train (upstream training); measured here on coco128",
        "files": card["dataset"].get("files", []),
        "license": "COCO annotations CC BY 4.0; images under their Flickr licenses",
    }
    card["recipe"] = "trained upstream (dog-qiuqiu/FastestDet train.py, configs/coco.yaml)"
    card["extra"]["source"] = {"repo": pretrained.FASTESTDET_REPO,
                               "commit": pretrained.FASTESTDET_COMMIT,
                               "file": "weights/weight_AP05:0.253207_280-epoch.pth",
                               "sha256": pretrained.FASTESTDET_COCO.sha256,
                               "license": pretrained.FASTESTDET_LICENSE}
    write_card(card_path, card, weights)


if __name__ == "__main__":
    main()
