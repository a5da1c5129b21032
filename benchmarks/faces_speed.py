"""Speed of the faces task on the CPU: the Ultra-Light detectors, and the whole pipeline.

    TASKZOO_MIRROR=../shared/data python benchmarks/faces_speed.py \\
        [--photo coco128/images/train2017/000000000308.jpg] [--threads 2] [--runs 200]

One photo (a coco128 photo with 5 faces, resized to 640x480), batch 1, `--threads` torch
threads, for RFB-320 and slim-320: the whole `detect()` (resize to 320x240, normalise,
network, decode, NMS) and the network alone on the prepared input, each after a warm-up,
`--runs` times. Then the released pipeline (`taskzoo.load("faces")`): find (RFB-320 and
O-Net's landmarks) and find + align + describe every face. Printed: images/s over all runs
(runs / total time) and the median time of one run. The load average is printed too: on a
shared machine the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from taskzoo.models import build
from taskzoo.tasks.faces.ultraface import detect, preprocess
from taskzoo.weights import thirdparty

COCO = Path("coco128") / "images" / "train2017" / "000000000308.jpg"


def photo_640x480(path: Path) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    image = decode_image(str(path), mode=ImageReadMode.RGB)
    small = torch.nn.functional.interpolate(image[None].float(), size=(480, 640),
                                            mode="bilinear", antialias=True)[0]
    return small.round().clamp(0, 255).to(torch.uint8)


def timed(fn, runs: int, warmup: int) -> tuple[float, float]:
    """(images/s over `runs` calls, median ms of one) after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return runs / sum(times), 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mirror = Path(os.environ.get("TASKZOO_MIRROR", "../shared/data").split(",")[0])
    ap.add_argument("--photo", type=Path, default=mirror / COCO)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    image = photo_640x480(args.photo)
    print(f"{args.photo.name} at 640x480, batch 1, {args.threads} threads, torch "
          f"{torch.__version__}, {args.runs} runs after {args.warmup}; load average before "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs, nice {os.nice(0)}")
    for variant in ("rfb", "slim"):
        net = build(f"ultraface_{variant}")
        net.load_state_dict(thirdparty.ultraface_state(variant), strict=True)
        net.eval()
        faces = len(detect(net, image)[0])
        whole = timed(lambda: detect(net, image), args.runs, args.warmup)
        x = preprocess([image])
        with torch.inference_mode():
            network = timed(lambda: net(x), args.runs, args.warmup)
        print(f"{variant:>4}-320: {faces} faces; detect() {whole[0]:.1f} images/s (median "
              f"{whole[1]:.2f} ms); network alone {network[0]:.1f} images/s (median "
              f"{network[1]:.2f} ms)")
    pipeline(image, args.runs // 4, args.warmup // 4)
    print(f"load average after {os.getloadavg()[0]:.2f}")


def pipeline(image: torch.Tensor, runs: int, warmup: int) -> None:
    """The released pipeline on `image`: find, then find + align + describe."""
    import taskzoo
    from taskzoo.tasks.faces.pipeline import describe, find_faces

    net = taskzoo.load("faces", device="cpu").model
    with torch.inference_mode():
        n = len(find_faces(net, image))
        find = timed(lambda: find_faces(net, image), runs, warmup)
        whole = timed(lambda: describe(net, image, find_faces(net, image).landmarks), runs, warmup)
    print(f"pipeline, {n} faces: find (RFB-320 + O-Net landmarks) {find[0]:.1f} images/s "
          f"(median {find[1]:.1f} ms); find + align + describe {whole[0]:.1f} images/s "
          f"(median {whole[1]:.1f} ms, {whole[1] / max(n, 1):.1f} ms a face)")


if __name__ == "__main__":
    main()
