"""The style images: seven public-domain paintings by name, through the verified hub, or any
image file of the user's.

The named files are the mirror's copies (`style_paintings/`, long side 1,024 px, each
resized from the source named below and pinned by sha256). There is no public URL for those
exact bytes, so they come from the cache or `TASKZOO_MIRROR`; a user without them names a
file of their own (`style=PATH`).

    >>> from taskzoo.tasks.style_transfer.paintings import painting_image
    >>> painting_image("starry_night").size                     # doctest: +SKIP
    (1024, 811)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskzoo import hub
from taskzoo.errors import DownloadError, InputError, UnknownNameError, did_you_mean

__all__ = ["GROUP", "PAINTINGS", "Painting", "painting_card", "painting_image", "painting_name"]

GROUP = "style_paintings"  # the mirror folder: <mirror>/style_paintings/<name>.jpg


@dataclass(frozen=True)
class Painting:
    """One named painting: its pinned file and what a weights card says about it."""

    file: hub.RemoteFile
    title: str
    artist: str
    year: str
    source: str  # repository@commit: path of the copy it was resized from


def _p(name: str, sha: str, size: int, title: str, artist: str, year: str,
       source: str) -> tuple[str, Painting]:
    return name, Painting(hub.RemoteFile(f"{name}.jpg", sha, size), title, artist, year, source)


_NEURAL_STYLE = "jcjohnson/neural-style@07c4b8299f8fbdafec0c514fc820ff1d7ff62e46"
_CLI_SETUP = "agileguy/cli-setup@0dfc5d1a4995f98c236df675cebaa8791f780b63"
PAINTINGS: dict[str, Painting] = dict((
    _p("starry_night", "77521b601a083433ff31ef9f4f8e406509cf9d1221c7d96cac32837e5be710f2",
       477_429, "The Starry Night", "Vincent van Gogh", "1889",
       f"{_NEURAL_STYLE}: examples/inputs/starry_night_google.jpg"),
    _p("great_wave", "d4310b99c10a540be17db09b79fd0d28b07d5caac76e3d6756de27f010ec67bc",
       330_729, "The Great Wave off Kanagawa", "Katsushika Hokusai", "c. 1831",
       "stuarthaze/StyleTransferApp@380b7f01256411eb14b1ecdb5db912d72d1c339c: "
       "images/The_Great_Wave_off_Kanagawa.jpg"),
    _p("the_scream", "ff719d6609083a2413742d9fd96dcbc88a150b86579a9b75caa94b722f2b0d42",
       221_891, "The Scream", "Edvard Munch", "1893",
       f"{_NEURAL_STYLE}: examples/inputs/the_scream.jpg"),
    _p("composition_vii", "65d60e7f8c5a456e208f5fbc0369c95549f4224335cb424eb4385fa155f6a24e",
       291_639, "Composition VII", "Wassily Kandinsky", "1913",
       "jcjohnson/fast-neural-style@813c83441953ead2adb3f65f4cc2d5599d735fa7: "
       "images/styles/composition_vii.jpg"),
    _p("impression_sunrise", "594c4b3d2b52f716caaa0663a8886cca4ff663e0584c2672fadc899d1b3ab061",
       222_784, "Impression, Sunrise", "Claude Monet", "1872",
       f"{_CLI_SETUP}: backgrounds/monet_impression_sunrise.jpg"),
    _p("grande_jatte", "b4b162a3e05e862cf70bd32fbf32049e6f89913f2a0381a6f1103adc8477eb2a",
       379_717, "A Sunday Afternoon on the Island of La Grande Jatte", "Georges Seurat",
       "1884-86", f"{_CLI_SETUP}: backgrounds/seurat_sunday_afternoon.jpg"),
    _p("the_kiss", "6125544a34bae1cf4004825c31c922ed4c0c2ee48b7cff9cea7fd467d53efe16",
       557_420, "The Kiss", "Gustav Klimt", "1907-08",
       "nicknochnack/Python-Neural-Style-Transfer@a969bbc1b0dc77fd978a21036a5b176f2edf9dcb: "
       "klimt.jpg"),
))
LICENSE = ("public domain (artists died before 1946; faithful photographs of 2-D works are "
           "not protected in the US or the EU)")


def _is_path(spec: str) -> bool:
    return os.sep in spec or "." in Path(spec).name or spec.startswith("~")


def painting_name(spec: str) -> str:
    """A short name for a style: the painting's name, or a file's stem (`my_art.png` ->
    `my_art`), lower_snake (a weights tag).

    >>> painting_name("starry_night"), painting_name("~/art/Blue Horse.JPG")
    ('starry_night', 'blue_horse')
    """
    key = spec.strip()
    if key.lower() in PAINTINGS:
        return key.lower()
    stem = Path(key).stem.lower()
    return "".join(ch if ch.isalnum() else "_" for ch in stem).strip("_") or "style"


def painting_image(spec: str | os.PathLike[str]) -> Any:
    """The style image as an RGB PIL image: a named painting (PAINTINGS) through the hub, or
    an image file. UnknownNameError, with the closest name, for a name that is neither."""
    from taskzoo.data.image_files import read_image
    from taskzoo.errors import DataError

    text = os.fspath(spec).strip()
    if text.lower() in PAINTINGS:
        painting = PAINTINGS[text.lower()]
        try:
            path = hub.fetch(painting.file, group=GROUP)
        except DownloadError as exc:
            raise DownloadError(f"style={text}: {exc}. The painting is pinned to the copy in a "
                                f"taskzoo mirror ({GROUP}/{painting.file.name}, resized from "
                                f"{painting.source}); without a mirror, give style=PATH to an "
                                "image of your own") from None
    else:
        path = Path(text).expanduser()
        if not _is_path(text) or not path.exists():
            raise UnknownNameError(
                f"style={text!r}: not a shared painting nor an image file."
                f"{did_you_mean(text, list(PAINTINGS))} Paintings: {', '.join(PAINTINGS)}; "
                "or give the path of an image")
    try:
        return read_image(path).convert("RGB")
    except DataError as exc:
        raise InputError(f"style={text}: {exc}") from None


def painting_card(spec: str) -> dict[str, Any]:
    """What a weights card says about the style: title, artist, year, file, license."""
    name = painting_name(spec)
    if name in PAINTINGS and spec.strip().lower() == name:
        p = PAINTINGS[name]
        return {"name": name, "title": p.title, "artist": p.artist, "year": p.year,
                "file": hub.describe([p.file])[0], "source": p.source, "license": LICENSE}
    return {"name": name, "file": Path(spec).name, "license": "the user's own image"}
