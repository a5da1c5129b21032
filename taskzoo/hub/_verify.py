"""Verification records, of `taskzoo.hub`: `sha256_file`, `verified_file`, and the records
that spare rehashing an unchanged file (its stat signature with the sha256 it matched, under
`cache_root()/verified`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path

from taskzoo.files import NotRegularFile, open_regular, write_json
from taskzoo.hub._base import CHUNK, cache_root


def sha256_file(path: Path) -> str:
    """Lowercase hex sha256 of a file's bytes, read in 1 MiB chunks.

    >>> sha256_file(Path("empty.bin"))  # doctest: +SKIP
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# A record says: the file at this absolute path, with this stat signature, has this sha256.
# The signature changes when the file is rewritten, replaced or resized, so a matching record
# saves rehashing a file on every use; anything that changes it brings the hash back.
# ctime is in it because a user can set mtime back (`touch -r`, `os.utime`) after an edit in
# place, but not ctime: the kernel sets it on every write, rename or metadata change. What the
# fast path cannot see is a write below the filesystem (a raw block device, a clock set back
# by root); `taskzoo verify` rehashes everything for that.
Signature = tuple[int, int, int, int, int]  # (size, st_mtime_ns, st_ctime_ns, st_ino, st_dev)


def verified_file(path: Path, sha256: str, size: int) -> bool:
    """True when `path` holds exactly the bytes pinned by (sha256, size).

    Hashes the file only when it has no verification record or its size, mtime, ctime, inode
    or device changed since the record was made. Each hash is recorded (with that stat
    signature) under `cache_root()/verified`; when the cache root is not writable nothing
    is recorded and the file is simply hashed again next time.

    >>> verified_file(Path("bilstm.sst2.safetensors"), "9f86d0...", 4181052)  # doctest: +SKIP
    True
    """
    return judge(Path(path), sha256, size)[0]


def signature(path: Path) -> Signature | None:
    """The stat signature of a regular file; None when it is absent or not a file."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def judge(path: Path, sha256: str, size: int) -> tuple[bool, Signature | None]:
    """(whether `path` is the pinned content, the signature judged; None: absent or unsure)."""
    sig = signature(path)
    if sig is None or sig[0] != size:
        return False, sig
    want = sha256.lower()
    rec = _recalled(path)
    if isinstance(rec, dict) and rec == _record(path, str(rec.get("sha256")), sig):
        return rec["sha256"] == want, sig  # unchanged since it was hashed
    try:
        digest = sha256_file(path)
    except FileNotFoundError:  # purged by another process between stat and open
        return False, None
    if signature(path) != sig:  # changed while we read it: no verdict either way
        return False, None
    remember(path, digest, sig)  # what it is, even when it is not what was asked for
    return digest == want, sig


def _record_path(path: Path) -> Path:
    key = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:24]
    return cache_root() / "verified" / f"{key}.json"


def _record(path: Path, sha256: str, sig: Signature) -> dict[str, object]:
    size, mtime_ns, ctime_ns, ino, dev = sig
    return {"path": os.path.abspath(path), "sha256": sha256.lower(), "size": size,
            "mtime_ns": mtime_ns, "ctime_ns": ctime_ns, "ino": ino, "dev": dev}


def read_record(path: Path) -> object:
    """The JSON in one of taskzoo's own record files; OSError (a FIFO or other non-regular
    file among them included: it is never opened for a read that would block) or ValueError."""
    with open_regular(path) as fh:
        return json.loads(fh.read().decode("utf-8"))


def _recalled(path: Path) -> object:
    try:
        return read_record(_record_path(path))
    except (OSError, ValueError):  # none yet, unreadable or damaged: hash instead
        return None


def remember(path: Path, sha256: str, sig: Signature | None) -> None:
    """Record that `path`, with signature `sig`, holds `sha256` (None: record nothing)."""
    if sig is None:
        return
    try:
        write_json(_record_path(path), _record(path, sha256, sig))
    except OSError:  # a read-only cache root: rehash next time instead of failing
        pass


def forget(path: Path) -> None:
    """Drop the verification record of `path`, if any."""
    with contextlib.suppress(OSError):
        _record_path(path).unlink(missing_ok=True)


def prune_records(folder: Path) -> None:
    """Drop verification records of files that are gone (and unreadable records)."""
    if not folder.is_dir():
        return
    for rec in folder.glob("*.json"):
        try:
            path = read_record(rec)["path"]  # type: ignore[index]
            if os.path.exists(path):
                continue
        except NotRegularFile:  # not a record taskzoo wrote: leave it alone
            continue
        except (OSError, ValueError, KeyError, TypeError):
            pass
        with contextlib.suppress(OSError):
            rec.unlink()
