"""Port fidelity of the Ultra-Light face detectors: the original code against taskzoo's.

    pip install opencv-python-headless        # the original code reads and resizes with it
    git clone https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB up
    git -C up checkout dffdddda9794a50607cba8f318507a28c1c27cab
    TASKZOO_MIRROR=../shared/data python benchmarks/faces_ultraface_parity.py \\
        --upstream up [--images photos.txt] [--out parity.txt]

For RFB-320 and slim-320, on every photo of `--images` (one path a line), the original
predictor (`create_*_predictor(net, candidate_size=1500)` and its `.predict(image, 750,
0.7)`, as its detect_imgs.py) and `tasks.faces.ultraface.detect(conf=0.7,
candidates=1500)` are run three ways:

- photo: each side given the photo, each resizing it its own way (cv2.resize upstream,
  torch here): the whole pipeline as a user meets it;
- same input: both given the photo already resized to 320x240 by cv2.resize, so neither
  resizes (cv2.resize to the same size is a copy): the network and postprocessing alone;
- all priors: the original network's softmax scores and decoded boxes for every prior on
  that same input against this model's.

Faces are paired by IoU (> 0.5, best first); box differences are in the photo's pixels.
The weights are the checkout's own `models/pretrained/version-*-320.pth`, which must be the
files taskzoo pins (their sha256 is checked).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import torch

from taskzoo import hub
from taskzoo.models import build
from taskzoo.models.ultraface import decode_boxes, ultraface_priors
from taskzoo.tasks.faces.ultraface import detect
from taskzoo.weights import thirdparty

sys.path.insert(0, str(Path(__file__).parent))
from faces_photos import photo_list  # noqa: E402

VARIANTS = {"rfb": "RFB", "slim": "slim"}  # ours -> upstream's file infix
THRESHOLD, CANDIDATES = 0.7, 1500  # run_video_face_detect's threshold; detect_imgs' candidates


def upstream_predictor(root: Path, variant: str):
    """The original network and predictor for `variant`, built by the checkout's code."""
    from vision.ssd.mb_tiny_fd import create_mb_tiny_fd, create_mb_tiny_fd_predictor
    from vision.ssd.mb_tiny_RFB_fd import (
        create_Mb_Tiny_RFB_fd,
        create_Mb_Tiny_RFB_fd_predictor,
    )

    pth = root / "models" / "pretrained" / f"version-{VARIANTS[variant]}-320.pth"
    pinned = thirdparty.ULTRAFACE_FILES[variant]
    if hub.sha256_file(pth) != pinned.sha256:
        sys.exit(f"{pth} is not the file taskzoo pins (sha256 {pinned.sha256[:12]}...)")
    create, create_predictor = ((create_Mb_Tiny_RFB_fd, create_Mb_Tiny_RFB_fd_predictor)
                                if variant == "rfb"
                                else (create_mb_tiny_fd, create_mb_tiny_fd_predictor))
    net = create(2, is_test=True, device="cpu")
    net.load(str(pth))
    return net, create_predictor(net, candidate_size=CANDIDATES, device="cpu")


def pair(a: torch.Tensor, b: torch.Tensor) -> list[tuple[int, int]]:
    """Greedy IoU pairing of two box sets (best overlap first, IoU > 0.5)."""
    from torchvision.ops import box_iou

    if len(a) == 0 or len(b) == 0:
        return []
    iou = box_iou(a, b)
    pairs = []
    while True:
        best = iou.max()
        if best <= 0.5:
            return pairs
        i, j = divmod(int(iou.argmax()), iou.shape[1])
        pairs.append((i, j))
        iou[i, :] = -1
        iou[:, j] = -1


class Tally:
    """Faces found by each side, and the largest differences between paired faces."""

    def __init__(self) -> None:
        self.images = self.theirs = self.ours = self.paired = 0
        self.box = self.score = self.box_sum = 0.0

    def add(self, theirs: tuple[torch.Tensor, torch.Tensor],
            ours: tuple[torch.Tensor, torch.Tensor], scale: torch.Tensor) -> None:
        (tb, ts), (ob, os_) = theirs, ours
        tb, ob = tb.reshape(-1, 4) * scale, ob.reshape(-1, 4) * scale
        self.images += 1
        self.theirs += len(tb)
        self.ours += len(ob)
        for i, j in pair(tb, ob):
            self.paired += 1
            self.box = max(self.box, float((tb[i] - ob[j]).abs().max()))
            self.box_sum += float((tb[i] - ob[j]).abs().mean())
            self.score = max(self.score, float((ts.reshape(-1)[i] - os_[j]).abs()))

    def line(self, name: str) -> str:
        return (f"  {name:<11} images {self.images}, faces upstream {self.theirs} / taskzoo "
                f"{self.ours}, paired {self.paired}, |box diff| max {self.box:.4f} px, mean "
                f"{self.box_sum / max(self.paired, 1):.4f} px, max |score diff| {self.score:.2e}")


def ours_for(variant: str, released: bool) -> torch.nn.Module:
    """Our network: the float32 conversion of the upstream file, or the released one (what
    `taskzoo.load("faces")` gives: float16 weights in a float32 network)."""
    if released:
        import taskzoo

        return getattr(taskzoo.load("faces", device="cpu").model, f"{variant}320")
    ours = build(f"ultraface_{variant}")
    ours.load_state_dict(thirdparty.ultraface_state(variant), strict=True)
    return ours.eval()


def compare(root: Path, variant: str, photos: list[Path], released: bool = False) -> list[str]:
    import cv2

    with contextlib.redirect_stdout(io.StringIO()):  # upstream prints every timing
        net, predictor = upstream_predictor(root, variant)
    ours = ours_for(variant, released)
    photo, same = Tally(), Tally()
    prior_score = prior_box = 0.0
    priors = ultraface_priors(320, 240)
    for path in photos:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (320, 240))
        with contextlib.redirect_stdout(io.StringIO()):
            theirs_photo = predictor.predict(rgb, CANDIDATES / 2, THRESHOLD)[::2]
            theirs_same = predictor.predict(small, CANDIDATES / 2, THRESHOLD)[::2]
        ours_photo = detect(ours, torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),
                            conf=THRESHOLD, candidates=CANDIDATES)
        small_t = torch.from_numpy(small).permute(2, 0, 1).contiguous()
        ours_same = detect(ours, small_t, conf=THRESHOLD, candidates=CANDIDATES)
        photo.add(theirs_photo, ours_photo, torch.ones(4))
        same.add(theirs_same, ours_same, torch.tensor([w / 320, h / 240] * 2))
        x = (small_t[None].float() - 127) / 128
        with torch.inference_mode():
            scores, boxes = net(x)
            logits, deltas = ours(x)
        prior_score = max(prior_score, float((scores - logits.softmax(-1)).abs().max()))
        prior_box = max(prior_box, float(
            ((boxes - decode_boxes(deltas, priors)) * torch.tensor([w, h, w, h])).abs().max()))
    return [f"{variant} ({VARIANTS[variant]}-320), threshold {THRESHOLD}, candidates "
            f"{CANDIDATES}:", photo.line("photo"), same.line("same input"),
            f"  {'all priors':<11} {len(photos)} images x {len(priors)} priors: max |score "
            f"diff| {prior_score:.2e}, max |box diff| {prior_box:.2e} px"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, type=Path,
                    help="a checkout of Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB")
    ap.add_argument("--images", type=Path, help="a text file: one photo a line (default: "
                    "faces_photos.py's)")
    ap.add_argument("--out", type=Path, help="also write the figures to this file")
    ap.add_argument("--released", action="store_true",
                    help="ours = the released face_pipeline.widerface_dlib (float16 weights)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    photos = photo_list(args.images)
    root = args.upstream.resolve()
    sys.path.insert(0, str(root))
    with contextlib.redirect_stdout(io.StringIO()):
        from vision.ssd.config.fd_config import define_img_size

        define_img_size(320)  # before the model modules are imported, as upstream's scripts
    lines = [f"upstream {root} (torch {torch.__version__}), {len(photos)} photos "
             f"from {args.images or 'faces_photos.py'}; ours: "
             + ("released face_pipeline.widerface_dlib" if args.released else "float32 conversion")]
    for variant in VARIANTS:
        lines += compare(root, variant, photos, args.released)
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
