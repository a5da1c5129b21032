"""The 20 real photos the faces ports are checked on: the coco128 images in which a person
covers at least 8 % of the picture (their YOLO labels), in file-name order, the first 20.

    TASKZOO_MIRROR=../shared/data python benchmarks/faces_photos.py > photos.txt

The parity scripts (`faces_*_parity.py`) take this list when given no other.
"""

from __future__ import annotations

import os
from pathlib import Path

COCO = Path("coco128")


def mirror() -> Path:
    """The first folder of TASKZOO_MIRROR, else ../shared/data beside the checkout."""
    given = os.environ.get("TASKZOO_MIRROR", "").split(",")[0].strip()
    return Path(given) if given else Path(__file__).resolve().parents[2] / "shared" / "data"


def fidelity_photos(root: Path | None = None, *, count: int = 20, share: float = 0.08) -> list[Path]:
    """Paths of the first `count` coco128 photos with a person box of at least `share` of
    the picture."""
    root = (root or mirror()) / COCO
    found = []
    for labels in sorted((root / "labels").rglob("*.txt")):
        rows = [r.split() for r in labels.read_text().splitlines() if r.strip()]
        if any(r[0] == "0" and float(r[3]) * float(r[4]) >= share for r in rows):
            found.append(next((root / "images").rglob(f"{labels.stem}.jpg")))
        if len(found) == count:
            break
    return found


def photo_list(listed: Path | None) -> list[Path]:
    """The photos named one a line in `listed`, else `fidelity_photos()`."""
    if listed is None:
        return fidelity_photos()
    return [Path(p.strip()) for p in listed.read_text(encoding="utf-8").splitlines() if p.strip()]


if __name__ == "__main__":
    print("\n".join(str(p) for p in fidelity_photos()))
