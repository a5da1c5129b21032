"""A gallery of known people: a folder with one subfolder per person, a few photos each
(`people/alice/1.jpg`, `people/bob/beach.png`), the workflow of `face_recognition`. Each
photo's largest face is described once; the descriptors are cached under taskzoo's cache
(never beside the photos) and a photo is described again only when its size or
modification time changes, or the networks do.

    >>> gallery = Gallery.load("people/", describe_photo)     # doctest: +SKIP
    >>> gallery.identify(descriptors, threshold=0.6)          # doctest: +SKIP
    (['alice', 'unknown'], [0.41, 0.73])
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from taskzoo.errors import InputError

UNKNOWN = "unknown"  # the name of a face farther than the threshold from everyone
FORMAT = 1  # the cache file's layout


@dataclass
class Gallery:
    """Descriptors [M, 128] of the gallery's photos, the person of each, and what was left
    out (photos without a face) with the reason."""

    root: Path
    people: list[str]
    descriptors: torch.Tensor
    owner: list[int]  # person index of each descriptor
    skipped: list[tuple[str, str]] = field(default_factory=list)
    described: int = 0  # photos described in this load (the rest came from the cache)

    @classmethod
    def load(cls, root: str | os.PathLike[str], describe: Callable[[Path], torch.Tensor | None],
             *, key: str, cache: Path | None) -> Gallery:
        """The gallery in folder `root`. `describe(photo)` gives the descriptor [128] of a
        photo's largest face, or None without a face; `key` names the networks (a cache made
        by others is not reused); `cache` is the cache folder (None: no cache)."""
        from taskzoo.data.image_files import image_files_under

        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise InputError(f"gallery={root}: not a folder (expected one subfolder per person, "
                             "a few photos of that person in each)")
        people = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not people:
            raise InputError(f"gallery={root}: no subfolders; expected one per person "
                             "(people/alice/*.jpg, people/bob/*.jpg)")
        cached = _read_cache(cache, folder, key)
        entries: dict[str, dict] = {}
        rows, owner, skipped, described = [], [], [], 0
        for k, person in enumerate(people):
            for photo in image_files_under(folder / person):
                rel = photo.relative_to(folder).as_posix()
                st = photo.stat()
                stamp = [st.st_size, st.st_mtime_ns]
                old = cached.get(rel)
                if old is not None and old["stamp"] == stamp:
                    vector = None if old["vector"] is None else torch.tensor(old["vector"])
                else:
                    vector = describe(photo)
                    described += 1
                entries[rel] = {"stamp": stamp,
                                "vector": None if vector is None else [float(v) for v in vector]}
                if vector is None:
                    skipped.append((rel, "no face found"))
                    continue
                rows.append(vector.float())
                owner.append(k)
        if cache is not None and (described or set(entries) != set(cached)):
            _write_cache(cache, folder, key, entries)
        missing = [p for k, p in enumerate(people) if k not in owner]
        if missing:
            warnings.warn(f"gallery {folder}: no usable photo of {', '.join(missing)} "
                          "(no image, or no face found in any)", stacklevel=2)
        if not rows:
            raise InputError(f"gallery={root}: no face found in any photo of "
                             f"{', '.join(people)}")
        return cls(folder, people, torch.stack(rows), owner, skipped, described)

    def identify(self, descriptors: torch.Tensor, *, threshold: float
                 ) -> tuple[list[str], list[float]]:
        """Each face's nearest person (the least distance to any of their photos) and that
        distance; UNKNOWN beyond `threshold`."""
        if not len(descriptors):
            return [], []
        dist = torch.cdist(descriptors.float(), self.descriptors)  # [N, M]
        per_person = torch.full((len(descriptors), len(self.people)), float("inf"))
        owner = torch.tensor(self.owner)
        per_person.scatter_reduce_(1, owner.expand_as(dist), dist, reduce="amin")
        best, who = per_person.min(1)
        names = [self.people[int(w)] if float(d) <= threshold else UNKNOWN
                 for d, w in zip(best, who)]
        return names, [round(float(d), 4) for d in best]


def _cache_file(cache: Path, folder: Path) -> Path:
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]
    return cache / f"{digest}.json"


def _read_cache(cache: Path | None, folder: Path, key: str) -> dict[str, dict]:
    """The cached descriptors of `folder` made by networks `key`, {} when none or unusable."""
    if cache is None:
        return {}
    path = _cache_file(cache, folder)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: described again
        return {}
    if (not isinstance(record, dict) or record.get("format") != FORMAT
            or record.get("key") != key or record.get("folder") != str(folder.resolve())
            or not isinstance(record.get("photos"), dict)):
        return {}
    return record["photos"]


def _write_cache(cache: Path, folder: Path, key: str, entries: dict[str, dict]) -> None:
    from taskzoo.files import write_json

    cache.mkdir(parents=True, exist_ok=True)
    write_json(_cache_file(cache, folder), {"format": FORMAT, "key": key,
                                            "folder": str(folder.resolve()), "photos": entries})
