"""A fixed corpus of hostile files and arguments for the fuzz test (issue 28): what a careless
user or a hostile folder hands to `taskzoo` instead of what it expects. Deterministic: the
same bytes on every run (the "random" ones come from a seeded generator)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# each file of the corpus: name -> its bytes (None: made by `build`, not written)
RANDOM = random.Random(28).randbytes(2048)
NON_UTF8 = b"\xff\xfe bad \x80"
LONG_LINE = ("word " * 4000).encode()  # one line of 20,000 characters


def _image_bytes(fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, fmt)
    return buf.getvalue()


def files() -> dict[str, bytes]:
    png, jpeg = _image_bytes("PNG"), _image_bytes("JPEG")
    return {
        "good.png": png,                      # a real image: the control, and --save's input
        "zero.png": b"",
        "zero.txt": b"",
        "trunc.png": png[: len(png) // 2],
        "trunc.jpg": jpeg[: len(jpeg) // 2],
        "text.png": b"this is not a picture\n",
        "png.txt": png,                       # a picture named as text
        "random.bin": RANDOM,
        "random.png": RANDOM,
        "nonutf8.txt": NON_UTF8,
        "nonutf8.csv": b"question,answer\n" + NON_UTF8 + b",yes\n",
        "nul.txt": b"bad\x00\x00 film\x00\n",
        "long.txt": LONG_LINE,
        "zero.csv": b"",
        "zero.mp4": b"",
        "random.mp4": RANDOM,
        "zero.safetensors": b"",
        "random.safetensors": RANDOM,
    }


# special entries: name -> what it is
SPECIAL = {
    "fifo.png": "fifo", "fifo.txt": "fifo", "fifo.csv": "fifo", "fifo.mp4": "fifo",
    "dir.png": "dir", "dir.txt": "dir", "empty": "dir",
    "loop.png": "loop", "loop.txt": "loop",
}


def build(root: Path) -> Path:
    """The corpus in `root/in`, plus run folders damaged in the ways a run can be."""
    corpus = root / "in"
    corpus.mkdir(parents=True)
    for name, data in files().items():
        (corpus / name).write_bytes(data)
    for name, kind in SPECIAL.items():
        path = corpus / name
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        else:  # a symlink to itself: stat() and open() fail with ELOOP
            os.symlink(path.name, path)
    (corpus / "dir.png" / "inner.txt").write_text("a folder named like a picture")
    # a folder holding a FIFO and good files: a reader must skip the FIFO, not open it
    mixed = corpus / "mixed"
    mixed.mkdir()
    (mixed / "a.png").write_bytes(files()["good.png"])
    (mixed / "a.txt").write_text("We open at nine. We close at five.")
    os.mkfifo(mixed / "pipe.png")
    os.mkfifo(mixed / "pipe.txt")
    for name, config in (("run_fifo", "fifo"), ("run_zero", b""), ("run_nonutf8", NON_UTF8),
                         ("run_list", b"[]"), ("run_random", RANDOM)):
        run = corpus / name
        run.mkdir()
        if config == "fifo":
            os.mkfifo(run / "config.json")
        else:
            (run / "config.json").write_bytes(config)  # type: ignore[arg-type]
        (run / "data.json").write_bytes(b"")
        (run / "best.safetensors").write_bytes(RANDOM)
    return corpus


def snapshot(root: Path) -> dict[str, str]:
    """Each entry under `root` (links not followed) -> its kind, or a regular file's sha256.
    Special files are never opened: a FIFO's reader would block."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link -> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            elif path.is_fifo():
                out[rel] = "fifo"
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


@contextmanager
def fifo_watch(root: Path, after: float = 3.0) -> Iterator[list[str]]:
    """Yields a list that names each FIFO under `root` a reader was still blocked on `after`
    seconds into the block. Past that time a writer opens and closes every FIFO with a
    reader, so a blocked reader reads an empty file and the case fails fast on this list
    instead of hanging (opening for writing without blocking succeeds only when a reader
    has the FIFO open)."""
    fifos = [Path(d) / n for d, _, names in os.walk(root) for n in names
             if (Path(d) / n).is_fifo()]
    opened: list[str] = []
    done = threading.Event()

    def unblock() -> None:
        if done.wait(after):
            return
        while not done.wait(0.05):
            for path in fifos:
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # ENXIO: no reader has it open
                    continue
                if str(path) not in opened:
                    opened.append(str(path))

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        done.set()
        thread.join()
