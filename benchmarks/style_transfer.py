"""Style transfer's figures beyond a run: the per-image optimisation on full-size photos, the
networks' speed, and one picture of photos down and paintings across.

    TASKZOO_MIRROR=../shared/data python benchmarks/style_transfer.py \\
        --optimize 10 --size 384 --style starry_night           # Gatys at 384 px vs random weights
    python benchmarks/style_transfer.py --speed RUN_OR_WEIGHTS...  # images/s at 256 px
    python benchmarks/style_transfer.py --grid out.png RUN_OR_WEIGHTS...

`--optimize N`: the first N photos of coco128 (real 640-px photos, not Flickr8k's 128-px
squares), each optimised with the recipe at `--size` px on its long side, with ImageNet Lite0
and with Lite0 at random weights; scored in ImageNet Lite2 (relative content and style
losses, `tasks/style_transfer/perceptual.py`); seconds per photo. `--speed`: a network
stylising the 100 Flickr8k test photos at 256 px, batch 1 and 8, on `--threads` threads.
`--grid`: Flickr8k test photos down; each network's painting and its output across. The load
average is printed: on a shared machine the times are not figures.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import taskzoo
from taskzoo.tasks.style_transfer.data import painting_tensor
from taskzoo.tasks.style_transfer.evaluate import loss_network
from taskzoo.tasks.style_transfer.optimize import optimize_image
from taskzoo.tasks.style_transfer.perceptual import StyleTargets, relative_losses

LAYERS = {"content": (4,), "style": (1, 2, 3, 4, 5)}


def _photo(path: str, side: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        s = side / max(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255


def optimize(n: int, size: int, style: str, steps: int, style_weight: float) -> None:
    mirror = os.environ.get("TASKZOO_MIRROR", "../shared/data").split(",")[0]
    photos = sorted(glob.glob(f"{mirror}/coco128/images/train2017/*.jpg"))[:n]
    scorer = loss_network("efficientnet_lite2", "imagenet", **LAYERS)
    painting = painting_tensor(style, 256)
    score_grams = StyleTargets.of(scorer, None, painting).grams
    rows = {}
    for init in ("imagenet", "random"):
        net = loss_network("efficientnet_lite0", init, **LAYERS)
        grams = StyleTargets.of(net, None, painting).grams
        got = []
        for path in photos:
            x = _photo(path, size)
            res = optimize_image(net, x, StyleTargets.for_photo(net, x, grams), steps=steps,
                                 style_weight=style_weight, progress=False)
            with torch.no_grad():
                c, s = relative_losses(scorer, res.image,
                                       StyleTargets.for_photo(scorer, x, score_grams))
            got.append((float(c), float(s), res.seconds))
        a = np.array(got)
        rows[init] = a.mean(0)
        print(f"{init:9s} Lite0: Lite2 content {a[:, 0].mean():.3f}  style {a[:, 1].mean():.3f}  "
              f"{a[:, 2].mean():.1f} s/photo (median {np.median(a[:, 2]):.1f}, max "
              f"{a[:, 2].max():.1f}) over {len(photos)} photos at {size} px, {steps} steps")
    ratio = rows["imagenet"][1] / rows["random"][1]
    print(f"style loss, ImageNet / random: {ratio:.2f} (at content {rows['imagenet'][0]:.3f} vs "
          f"{rows['random'][0]:.3f})")


def speed(specs: list[str], n: int) -> None:
    from taskzoo.data.flickr8k import load_flickr8k
    from taskzoo.tasks.style_transfer.data import square

    test = load_flickr8k("test").images
    photos = [square(test.image(i), 256) for i in range(n)]
    for spec in specs:
        style = _load(spec)
        for batch in (1, 8):
            style.batch_size = batch
            style(photos[:batch])  # warm-up
            times = []
            for _ in range(3):
                start = time.perf_counter()
                style(photos)
                times.append(time.perf_counter() - start)
            print(f"{spec}: {len(photos) / statistics.median(times):.1f} images/s at 256 px, "
                  f"batch {batch}, {torch.get_num_threads()} threads")


def _load(spec: str):
    if Path(spec).is_dir():
        return taskzoo.load_run(spec, device="cpu")
    return taskzoo.load("style_transfer", weights=spec, device="cpu")


def grid(specs: list[str], out: str, rows: int) -> None:
    from taskzoo.data.flickr8k import load_flickr8k
    from taskzoo.report import grid_axes, png_bytes
    from taskzoo.tasks.style_transfer.data import square

    test = load_flickr8k("test").images
    photos = [square(test.image(i), 256) for i in range(rows)]
    nets = [_load(s) for s in specs]
    cols = len(nets) + 1
    fig, axes = grid_axes((rows + 1) * cols, cols=cols, cell=(2.0, 2.0), extra=0.3)
    for j, net in enumerate(nets, start=1):
        axes[j].imshow(np.asarray(painting_tensor(net.painting, 256)[0].permute(1, 2, 0)))
        axes[j].set_title(net.painting, fontsize=8)
    for i, photo in enumerate(photos, start=1):
        axes[i * cols].imshow(photo)
        for j, net in enumerate(nets, start=1):
            axes[i * cols + j].imshow(np.asarray(net(photo)))
    fig.tight_layout()
    Path(out).write_bytes(png_bytes(fig))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("specs", nargs="*", help="run directories or released weights names")
    ap.add_argument("--optimize", type=int, default=0, help="photos to optimise per image")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--style-weight", type=float, default=3.0)
    ap.add_argument("--style", default="starry_night")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--grid", default="")
    ap.add_argument("--rows", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.2f}, {args.threads} threads")
    if args.optimize:
        optimize(args.optimize, args.size, args.style, args.steps, args.style_weight)
    if args.speed:
        speed(args.specs, args.photos)
    if args.grid:
        grid(args.specs, args.grid, args.rows)


if __name__ == "__main__":
    main()
