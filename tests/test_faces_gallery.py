"""The faces task's parts that need no network: the gallery and its cache, names carried by
video tracks, the str call options, ORL's splits shared with image_classification."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskzoo.errors import InputError
from taskzoo.tasks.faces.gallery import UNKNOWN, Gallery
from taskzoo.video import TrackNames


def _photo(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


class Describer:
    """A stand-in descriptor: the photo's mean grey level on the first axis; a photo whose
    level is 0 has no face. Counts the photos it was asked to describe."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, path: Path) -> torch.Tensor | None:
        self.calls.append(path.name)
        level = float(np.asarray(Image.open(path)).mean())
        if level == 0:
            return None
        v = torch.zeros(128)
        v[0] = level / 100
        return v


@pytest.fixture
def gallery_dir(tmp_path: Path) -> Path:
    root = tmp_path / "people"
    _photo(root / "alice" / "1.png", 100)
    _photo(root / "alice" / "2.png", 110)
    _photo(root / "bob" / "1.png", 200)
    _photo(root / "bob" / "dark.png", 0)
    return root


def test_gallery_describes_each_photo_once_and_again_only_when_it_changes(gallery_dir, tmp_path):
    cache = tmp_path / "cache"
    d = Describer()
    g = Gallery.load(gallery_dir, d, key="k1", cache=cache)
    assert g.people == ["alice", "bob"] and len(d.calls) == 4 and g.described == 4
    assert g.skipped == [("bob/dark.png", "no face found")]
    assert g.owner == [0, 0, 1]
    # the cache is taskzoo's own folder, nothing is written beside the photos
    assert list(cache.iterdir()) and sorted(p.name for p in gallery_dir.rglob("*")) == \
        ["1.png", "1.png", "2.png", "alice", "bob", "dark.png"]
    d2 = Describer()
    g2 = Gallery.load(gallery_dir, d2, key="k1", cache=cache)
    assert d2.calls == [] and torch.equal(g2.descriptors, g.descriptors)
    # a changed photo (new content, new mtime) and a new person are described; nothing else
    _photo(gallery_dir / "alice" / "2.png", 120)
    st = (gallery_dir / "alice" / "2.png").stat()
    os.utime(gallery_dir / "alice" / "2.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _photo(gallery_dir / "carol" / "a.png", 50)
    d3 = Describer()
    g3 = Gallery.load(gallery_dir, d3, key="k1", cache=cache)
    assert sorted(d3.calls) == ["2.png", "a.png"] and g3.people == ["alice", "bob", "carol"]
    assert float(g3.descriptors[1, 0]) == pytest.approx(1.2)
    # other networks (another key) never reuse the descriptors
    d4 = Describer()
    Gallery.load(gallery_dir, d4, key="k2", cache=cache)
    assert len(d4.calls) == 5


def test_gallery_names_the_nearest_person_or_unknown(gallery_dir):
    g = Gallery.load(gallery_dir, Describer(), key="k", cache=None)
    q = torch.zeros(3, 128)
    q[:, 0] = torch.tensor([1.04, 1.95, 3.5])
    names, dist = g.identify(q, threshold=0.3)
    assert names == ["alice", "bob", UNKNOWN]
    assert dist[0] == pytest.approx(0.04, abs=1e-4) and dist[2] == pytest.approx(1.5, abs=1e-4)
    assert g.identify(torch.zeros(0, 128), threshold=0.3) == ([], [])


def test_gallery_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        Gallery.load(tmp_path / "nope", Describer(), key="k", cache=None)
    (tmp_path / "flat").mkdir()
    _photo(tmp_path / "flat" / "x.png", 10)
    with pytest.raises(InputError, match="no subfolders; expected one per person"):
        Gallery.load(tmp_path / "flat", Describer(), key="k", cache=None)
    _photo(tmp_path / "dark" / "ann" / "x.png", 0)
    with pytest.raises(InputError, match="no face found in any photo of ann"):
        with pytest.warns(UserWarning, match="no usable photo of ann"):
            Gallery.load(tmp_path / "dark", Describer(), key="k", cache=None)


def test_a_damaged_cache_is_described_again(gallery_dir, tmp_path):
    cache = tmp_path / "cache"
    Gallery.load(gallery_dir, Describer(), key="k", cache=cache)
    for f in cache.iterdir():
        f.write_text("{not json", encoding="utf-8")
    d = Describer()
    Gallery.load(gallery_dir, d, key="k", cache=cache)
    assert len(d.calls) == 4


def test_track_names_keep_a_recognised_name():
    names = TrackNames(UNKNOWN)
    assert names.update([1, 2], ["alice", UNKNOWN]) == ["alice", UNKNOWN]
    assert names.update([1, 2], [UNKNOWN, UNKNOWN]) == ["alice", UNKNOWN]
    assert names.update([1, 2], ["bob", "carol"]) == ["alice", "carol"]
    assert names.update([1], ["carol"]) == ["alice"]  # a tie keeps the first name seen
    assert names.update([1], ["bob"]) == ["bob"]


def test_str_call_options_check_their_choices():
    from taskzoo.tasks.base import CallOption

    opt = CallOption("detector", str, choices=("rfb320", "slim320", "mtcnn"))
    assert opt.check("mtcnn") == "mtcnn"
    with pytest.raises(InputError, match=r"detector='rfb': expected one of rfb320, slim320, "
                                         r"mtcnn\. Did you mean"):
        opt.check("rfb")
    with pytest.raises(InputError, match="expected one of"):
        opt.check(3)
    assert CallOption("gallery", str).check(Path("people")) == "people"


def test_orl_splits_are_seeded_five_and_five(shared_data, monkeypatch):
    from taskzoo.data import images

    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    faces = images.load_orl()
    pool, test = images.per_class_split(faces.labels, 5, 3)
    assert len(pool) == len(test) == 200 and not set(pool) & set(test)
    assert all(np.sum(faces.labels[pool] == p) == 5 for p in range(40))
    again = images.per_class_split(faces.labels, 5, 3)
    assert again == (pool, test) and images.per_class_split(faces.labels, 5, 4) != (pool, test)
