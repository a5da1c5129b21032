"""dataset=flowers / flowers_full: the seeded per-class splits, the mirror's 750 photos through
the hub, and the canonical archive's path (a small fake flower_photos.tgz served on
127.0.0.1): the same 750 names, resized by the mirror's rule, with its own cache marker."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskzoo import hub
from taskzoo.data import flowers
from taskzoo.errors import DataError, OfflineError

FAST = {"retries": 0, "backoff": 0.0}


def _jpeg(size: tuple[int, int], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


def _tgz(path: Path, members: dict[str, bytes]) -> bytes:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path.read_bytes()


# a large landscape, a large portrait and a small photo among the 750 (the rest are tiny)
BIG_WIDE, BIG_TALL, SMALL = (600, 400), (300, 500), (240, 180)


@pytest.fixture
def fake_archive(tmp_path, server, monkeypatch):
    """A flower_photos.tgz with the subset's 750 names, 5 photos outside it and LICENSE.txt,
    served on 127.0.0.1 and pinned in place of the real archive; a cache of its own (the
    session's may hold the mirror's copy)."""
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    names = flowers.subset_photos()
    photos = {rel: _jpeg((12, 9)) for rel in names}
    chosen = {names[0]: _jpeg(BIG_WIDE, 1), names[200]: _jpeg(BIG_TALL, 2),
              names[400]: _jpeg(SMALL, 3)}
    photos.update(chosen)
    extra = {f"{c}/extra_{c}.jpg": _jpeg((12, 9)) for c in flowers.FLOWER_CLASSES}
    members = {f"flower_photos/{rel}": data for rel, data in {**photos, **extra}.items()}
    members["flower_photos/LICENSE.txt"] = b"All images are CC-BY (fake)\n"
    data = _tgz(tmp_path / "flower_photos.tgz", members)
    server.files["/flower_photos.tgz"] = data
    pin = hub.RemoteFile("flower_photos.tgz", hashlib.sha256(data).hexdigest(), len(data),
                         (server.url("/flower_photos.tgz"),))
    monkeypatch.setattr(flowers, "FLOWERS_ARCHIVE", pin)
    monkeypatch.setattr(flowers, "_noted", False)
    return chosen, extra


# ---------------------------------------------------------------- splits


def test_subset_split_is_80_20_50_per_class_disjoint_and_seeded():
    labels = np.repeat(np.arange(5), 150)
    a = flowers.split_per_class(labels, 0, dev=20, test=50)
    assert {k: len(v) for k, v in a.items()} == {"train": 400, "dev": 100, "test": 250}
    for split, per in (("train", 80), ("dev", 20), ("test", 50)):
        assert np.bincount(labels[a[split]], minlength=5).tolist() == [per] * 5
    assert sorted(a["train"] + a["dev"] + a["test"]) == list(range(750))  # disjoint, complete
    assert flowers.split_per_class(labels, 0, dev=20, test=50) == a  # deterministic
    b = flowers.split_per_class(labels, 1, dev=20, test=50)
    assert b["test"] != a["test"] and b["train"] != a["train"]


def test_full_split_is_proportional_per_class():
    counts = list(flowers.FULL_COUNTS.values())
    labels = np.repeat(np.arange(5), counts)
    s = flowers.split_per_class(labels, 0, **flowers.FULL_SPLIT)
    for c, n in enumerate(counts):
        assert (labels[s["dev"]] == c).sum() == round(0.1 * n)
        assert (labels[s["test"]] == c).sum() == round(0.2 * n)
    assert sorted(s["train"] + s["dev"] + s["test"]) == list(range(len(labels)))
    assert flowers.split_per_class(labels, 3, **flowers.FULL_SPLIT)["dev"] != s["dev"]


def test_a_split_that_leaves_no_training_image_is_an_error():
    with pytest.raises(DataError, match="leave none to train on"):
        flowers.split_per_class(np.zeros(10, int), 0, dev=5, test=5)


# ---------------------------------------------------------------- the mirror


def test_manifest_lists_the_mirror_s_750_photos():
    names = flowers.subset_photos()
    assert len(names) == 750
    assert {n.split("/")[0] for n in names} == set(flowers.FLOWER_CLASSES)
    assert all(sum(n.startswith(c + "/") for n in names) == 150 for c in flowers.FLOWER_CLASSES)
    assert {"LICENSE.txt", "README.md", "manifest.tsv"} <= {
        rel for rel, _, _ in flowers.subset_folder().manifest}


def test_manifest_matches_the_shared_folder(shared_data):
    rows = (shared_data / "flower_photos_subset" / "manifest.tsv").read_text().splitlines()[1:]
    listed = {p: (s, int(n)) for p, s, n in (r.split("\t") for r in rows)}
    ours = {rel: (sha, size) for rel, sha, size in flowers.subset_folder().manifest
            if "/" in rel}
    assert ours == listed


def test_loads_the_750_from_the_mirror(shared_data, monkeypatch, capsys):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    got = flowers.load_flowers(split_seed=0)
    assert len(got.images) == 750 and got.images.classes == flowers.FLOWER_CLASSES
    assert {k: len(v) for k, v in got.index.items()} == {"train": 400, "dev": 100, "test": 250}
    assert "CC BY 2.0" in got.name and "mirror" in got.name
    img = got.images.image(got.index["test"][0])
    assert img.mode == "RGB" and max(img.size) <= 256
    assert "pixels may differ" not in capsys.readouterr().err  # the mirror's own bytes


def test_tiny_run_on_flowers(shared_data, monkeypatch, tmp_path):
    import taskzoo

    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    result = taskzoo.run("image_classification", dataset="flowers", image_size=32,
                         model="cnn_small", epochs=1, max_steps=2, batch_size=32,
                         out=str(tmp_path / "run"))
    assert 0.0 <= result.metrics["test/accuracy"] <= 1.0 and "dev/accuracy" in result.metrics
    data = json.loads((result.run_dir / "data.json").read_text())
    assert data["labels"] == flowers.FLOWER_CLASSES and data["size"] == [32, 32]
    assert data["channels"] == 3


# ---------------------------------------------------------------- the canonical archive


def test_without_the_mirror_the_750_are_taken_from_the_archive_and_resized(fake_archive,
                                                                           server, capsys):
    chosen, extra = fake_archive
    got = flowers.load_flowers(split_seed=0)
    root = got.images.paths[0].parent.parent
    assert len(got.images) == 750 and "resized here" in got.name
    assert {k: len(v) for k, v in got.index.items()} == {"train": 400, "dev": 100, "test": 250}
    names = flowers.subset_photos()
    assert not any((root / rel).exists() for rel in extra)  # only the 750 are taken
    assert (root / "LICENSE.txt").read_bytes().startswith(b"All images are CC-BY")
    for rel, size in ((names[0], (256, 171)), (names[200], (154, 256))):
        with Image.open(root / rel) as im:
            assert im.size == size and im.format == "JPEG"
        with Image.open(io.BytesIO(chosen[rel])) as src:  # the README's exact rule
            want = io.BytesIO()
            src.resize(size, Image.Resampling.LANCZOS).save(want, "JPEG", quality=90,
                                                            optimize=True)
        assert (root / rel).read_bytes() == want.getvalue()
    assert (root / names[400]).read_bytes() == chosen[names[400]]  # small: original bytes
    assert "pixels may differ slightly" in capsys.readouterr().err
    # the derived folder is marked complete: a second load neither downloads nor rebuilds
    assert root.with_name(root.name + ".complete.json").is_file()
    before = server.count()
    stamp = (root / names[0]).stat().st_mtime_ns
    again = flowers.load_flowers(split_seed=1)
    assert server.count() == before and (root / names[0]).stat().st_mtime_ns == stamp
    assert again.index["test"] != got.index["test"]
    assert "pixels may differ" not in capsys.readouterr().err  # said once per process


def test_a_changed_derived_photo_is_rebuilt(fake_archive):
    root = flowers.load_flowers().images.paths[0].parent.parent
    first = flowers.subset_photos()[0]
    good = (root / first).read_bytes()
    (root / first).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size, other bytes
    flowers.load_flowers()
    assert (root / first).read_bytes() == good


def test_an_archive_without_a_subset_photo_is_an_error(tmp_path, server, monkeypatch):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    names = flowers.subset_photos()
    members = {f"flower_photos/{rel}": _jpeg((8, 8)) for rel in names[1:]}
    members["flower_photos/LICENSE.txt"] = b"x"
    data = _tgz(tmp_path / "flower_photos.tgz", members)
    server.files["/f.tgz"] = data
    monkeypatch.setattr(flowers, "FLOWERS_ARCHIVE", hub.RemoteFile(
        "flower_photos.tgz", hashlib.sha256(data).hexdigest(), len(data),
        (server.url("/f.tgz"),)))
    with pytest.raises(DataError, match=f"lacks 1 of the 750 photos.*{names[0]}"):
        flowers.load_flowers()


def test_offline_without_a_mirror_names_the_archive_its_sha256_and_where_to_put_it(
        monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        flowers.load_flowers()
    msg = str(err.value)
    assert "flower_photos/flower_photos.tgz" in msg and flowers.FLOWERS_ARCHIVE.sha256 in msg
    assert str(hub.cached_path(flowers.FLOWERS_ARCHIVE)) in msg
    assert "flower_photos_subset/" in msg
    with pytest.raises(OfflineError, match=flowers.FLOWERS_ARCHIVE.sha256):
        flowers.load_flowers_full()


def test_flowers_full_takes_every_photo_of_the_archive(fake_archive, monkeypatch):
    counts = {c: 151 for c in flowers.FLOWER_CLASSES}  # the fake: 150 + 1 extra per class
    monkeypatch.setattr(flowers, "FULL_COUNTS", counts)
    got = flowers.load_flowers_full(split_seed=0)
    assert len(got.images) == 755 and "all 755 photos" in got.name
    assert {k: len(v) for k, v in got.index.items()} == {"train": 530, "dev": 75, "test": 150}
    root = got.images.paths[0].parents[1]
    with Image.open(root / flowers.subset_photos()[0]) as im:
        assert im.size == BIG_WIDE  # as published: not resized
    monkeypatch.setattr(flowers, "FULL_COUNTS", flowers.FULL_COUNTS | {"daisy": 633})
    with pytest.raises(DataError, match="expected .* photos per class"):
        flowers.load_flowers_full()
