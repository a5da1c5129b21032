"""Archives holding a dataset folder, of `taskzoo.hub`: `RemoteArchive`, how one is
obtained (pinned and cached, read in place from a mirror), and safe extraction.

Extraction lists and checks every zip or tar member before writing anything: absolute
paths, `..` components, links, devices and FIFOs refuse the whole archive (tar members also
pass PEP 706's data filter where Python has it); entry, file and byte caps stop bombs.
Files are written new (`write_new`, hashed while written) and the tree is synced once
(`sync_tree`) before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from taskzoo.errors import IntegrityError
from taskzoo.hub._base import CHUNK, Absent, Permanent, make_cache_dir
from taskzoo.hub._files import (
    RemoteFile,
    adopt_sibling,
    cached_ok,
    cached_path,
    drop_archive,
    locked_source,
    part_path,
)
from taskzoo.hub._verify import remember, signature, verified_file

Want = dict[str, tuple[str, int]]  # path -> (sha256, size)

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
try:  # Python built without liblzma: .tar.xz is then unsupported, not a crash at import
    import lzma

    _DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (zlib.error, EOFError, lzma.LZMAError)
except ImportError:  # pragma: no cover
    _DECOMPRESS_ERRORS = (zlib.error, EOFError)
# PEP 706 (Python 3.12, 3.11.4+): refuses absolute names, escapes, unsafe links, devices.
# Members are also checked by _member_path and _tar_member below, stricter, on any Python.
_DATA_FILTER = getattr(tarfile, "data_filter", None)


@dataclass(frozen=True)
class RemoteArchive:
    """A zip or tar (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz) holding a dataset folder.

    `root` is the folder inside the archive that becomes the dataset folder ("" its top
    level; None: found from the manifest, the shallowest folder holding all its files).
    `sha256=""` leaves the archive unpinned, allowed only when the RemoteFolder has a
    manifest: then every extracted file is verified by the manifest instead.

    >>> a = RemoteArchive("att_faces.zip", urls=("https://example.org/att_faces.zip",))
    >>> a.sha256, a.root  # unpinned: needs the folder's manifest; the zip's top level
    ('', '')
    """

    name: str  # file name, e.g. "att_faces.zip"; its suffix tells the format
    sha256: str = ""  # "" = unpinned
    size: int = 0  # bytes of the archive when pinned
    urls: tuple[str, ...] = ()  # tried in order after the cache and mirrors
    root: str | None = ""

    def remote(self) -> RemoteFile:
        """The archive itself as a pinned file (only when `sha256` is set)."""
        return RemoteFile(self.name, self.sha256, self.size, self.urls)

def unpinned_cap(want: Want) -> int:
    """Most bytes accepted for an unpinned archive of these files: their total plus a
    generous allowance for headers, padding and incompressible data (tar pads each file to
    512 bytes and adds a 512-byte header)."""
    total = sum(s for _, s in want.values())
    return total + total // 4 + 2048 * len(want) + (1 << 20)


def not_cached(part: Path) -> None:
    """The copy step of a pinned archive expected in the cache: it is gone."""
    raise Absent("no longer in the cache")


def local_archive(path: Path) -> Path:
    """An archive read in place from a mirror folder (never copied, never deleted)."""
    if not path.is_file():
        raise Absent(f"not found at {path}")
    return path


def pinned_archive(a: RemoteArchive, group: str, copy: Callable[[Path], None],
                   wait: float) -> Path:
    """The verified cached copy of a pinned archive, obtained with `copy` if needed."""
    rf = a.remote()
    target = cached_path(rf)
    if verified_file(target, rf.sha256, rf.size):
        return target
    make_cache_dir(target.parent)
    held = locked_source(target, wait, f"{group}/{a.name}")
    with held:
        if cached_ok(target, rf) or adopt_sibling(rf, target):
            return target
        part = part_path(target)
        copy(part)
        os.replace(part, target)
        remember(target, rf.sha256, signature(target))
    return target

def write_new(inp: BinaryIO, path: Path, limit: int, source: str) -> tuple[str, int]:
    """Copy at most `limit` bytes into a new file, hashing them: (sha256, bytes written)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = open(path, "xb")  # exclusive: a name given twice is refused, never overwritten
    except (FileExistsError, NotADirectoryError):
        raise IntegrityError(f"{source}: {path.name!r} clashes with another entry "
                             f"(listed twice, or both a file and a folder); refused") from None
    h, n = hashlib.sha256(), 0
    with out:
        while n < limit:
            try:
                chunk = inp.read(min(CHUNK, limit - n))
            except (OSError, *_DECOMPRESS_ERRORS, zipfile.BadZipFile, tarfile.TarError) as e:
                raise Permanent(f"cannot read {source}: {e}") from None
            if not chunk:
                break
            out.write(chunk)
            h.update(chunk)
            n += len(chunk)
    # no fsync per file: the folder is synced once, before it is renamed into place
    # (`sync_tree`); 8,000 fsyncs cost Flickr8k 27 s of a 31 s first load
    return h.hexdigest(), n


def sync_tree(folder: Path) -> None:
    """Everything written under `folder` on disk before the folder is renamed into place,
    so a crash cannot leave a complete-looking folder of empty files."""
    if hasattr(os, "sync"):  # one call flushes every dirty page (POSIX)
        os.sync()
        return
    for path in folder.rglob("*"):  # Windows: no sync(); fsync file by file
        if path.is_file():
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())

# ---------------------------------------------------------------- archives: safe extraction


@dataclass(frozen=True)
class _Member:
    name: str  # canonical relative path inside the archive
    is_dir: bool
    open: Callable[[], BinaryIO]


def is_archive(path: Path) -> bool:
    """True for a zip or tar file, judged by its bytes."""
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def _unsafe(label: str, why: str) -> IntegrityError:
    return IntegrityError(f"{label}: unsafe archive, refused: {why}")


def _member_path(raw: str, label: str) -> str:
    """The canonical relative path of an archive member; absolute paths, `..` components,
    backslashes and NUL are refused (the whole archive is)."""
    if "\0" in raw or "\\" in raw:
        raise _unsafe(label, f"member {raw!r} has a backslash or NUL in its name")
    if raw.startswith("/") or re.match(r"[A-Za-z]:", raw):
        raise _unsafe(label, f"member {raw!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(label, f"member {raw!r} points outside the folder ('..')")
    return "/".join(parts)


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> _Member:
    name = _member_path(info.filename, label)
    mode = info.external_attr >> 16  # unix mode, when the archiver recorded one
    if stat.S_ISLNK(mode):
        raise _unsafe(label, f"member {info.filename!r} is a symbolic link; links are refused")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _unsafe(label, f"member {info.filename!r} is a device, FIFO or socket")

    def opener() -> BinaryIO:
        try:
            return zf.open(info)  # type: ignore[return-value]
        except (RuntimeError, NotImplementedError) as e:  # encrypted, unknown compression
            raise Permanent(f"{label}: cannot read member {info.filename!r}: {e}") from None

    return _Member(name, info.is_dir(), opener)


def _tar_member(tf: tarfile.TarFile, ti: tarfile.TarInfo, label: str, dest: Path) -> _Member:
    name = _member_path(ti.name, label)
    if ti.issym() or ti.islnk():
        kind = "a symbolic" if ti.issym() else "a hard"
        raise _unsafe(label, f"member {ti.name!r} is {kind} link to {ti.linkname!r}; "
                             f"links are refused")
    if not (ti.isreg() or ti.isdir()):
        raise _unsafe(label, f"member {ti.name!r} is a device, FIFO or other special file")
    if _DATA_FILTER is not None:
        try:
            _DATA_FILTER(ti, str(dest))
        except tarfile.FilterError as e:
            raise _unsafe(label, str(e)) from None

    def opener() -> BinaryIO:
        return tf.extractfile(ti)  # type: ignore[return-value]  # regular file: never None

    return _Member(name, ti.isdir(), opener)


@contextlib.contextmanager
def _archive_members(archive: Path, name: str, label: str, dest: Path,
                     max_entries: int) -> Iterator[list[_Member]]:
    """Open an archive and list its members, every one checked before anything is written."""
    if name.lower().endswith(".zip"):
        kind = "zip"
    elif name.lower().endswith(_TAR_SUFFIXES):
        kind = "tar"
    else:  # no telling suffix: look at the bytes
        kind = "zip" if zipfile.is_zipfile(archive) else "tar"
    too_many = _unsafe(label, f"more than {max_entries} entries (a decompression bomb?)")
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                if len(infos) > max_entries:
                    raise too_many
                yield [_zip_member(zf, i, label) for i in infos]
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = []
                for ti in tf:  # header by header: a flood of entries stops at the limit
                    if len(members) >= max_entries:
                        raise too_many
                    members.append(_tar_member(tf, ti, label, dest))
                yield members
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, *_DECOMPRESS_ERRORS) as e:
        raise Permanent(f"{label}: not a readable {kind} archive ({type(e).__name__}: "
                        f"{e})") from None


def _find_root(members: list[_Member], want: Want, label: str) -> str:
    """The shallowest folder in the archive that holds every file of the manifest."""
    files = {m.name for m in members if not m.is_dir}
    probe = min(want, key=lambda r: (r.count("/"), r))
    roots = sorted({"" if f == probe else f[: -len(probe) - 1] for f in files
                    if f == probe or f.endswith("/" + probe)}, key=lambda r: (r.count("/"), r))
    for root in roots:
        prefix = f"{root}/" if root else ""
        if all(prefix + rel in files for rel in want):
            return root
    raise IntegrityError(f"{label}: no folder in the archive holds the manifest's files "
                         f"(looked for {probe!r})")


def _extract(archive: Path, a: RemoteArchive, dest: Path, label: str, want: Want | None,
             limits: tuple[int, int]) -> Want:
    """Extract the folder at `a.root` of `archive` into `dest` (empty), verified.

    With a manifest only its files are written, each bounded by its pinned size (+1 byte to
    reject), so the manifest's total bounds the disk used; other members are checked for
    safety but never written. Without one (a pinned archive) every regular file under the
    root is written, up to `limits` (bytes, files) in all."""
    max_bytes, max_files = limits
    # Entries (files, folders, members outside the root) only cost memory and CPU to list;
    # the bound stops a flood of headers, not a legitimately larger archive.
    max_entries = (max(3 * len(want) + 1000, 200_000) if want is not None
                   else 2 * max_files + 1000)
    got: Want = {}
    total = 0
    with _archive_members(archive, a.name, label, dest, max_entries) as members:
        root = (_find_root(members, want, label) if a.root is None and want is not None
                else (a.root or "").strip("/"))
        prefix = f"{root}/" if root else ""
        for m in members:
            if m.is_dir or not m.name.startswith(prefix) or m.name == root:
                continue
            rel = m.name[len(prefix):]
            if want is not None:
                if rel not in want:
                    continue  # not part of the dataset (e.g. __MACOSX/): never written
                sha, limit = want[rel]
            else:
                if len(got) >= max_files:
                    raise _unsafe(label, f"more than {max_files} files (a decompression bomb?)")
                sha, limit = "", max_bytes - total
            if rel in got:
                raise _unsafe(label, f"member {m.name!r} appears twice")
            with m.open() as inp:
                digest, n = write_new(inp, dest / rel, limit + 1, f"{m.name} in {label}")
            if n > limit:
                raise _unsafe(label, f"{m.name!r} is larger than its pinned {limit} bytes"
                              if want is not None else
                              f"more than {max_bytes} bytes extracted (a decompression bomb?)")
            if want is not None and digest != sha:
                raise IntegrityError(f"{rel} in {label}: sha256 {digest}, expected {sha} "
                                     f"({n} bytes)")
            got[rel] = (digest, n)
            total += n
    if want is not None and (missing := sorted(want.keys() - got.keys())):
        raise IntegrityError(f"{label}: the archive lacks {len(missing)} of the manifest's "
                             f"{len(want)} files under {root or 'its top level'!r}, e.g. "
                             f"{', '.join(missing[:3])}")
    if not got:
        raise IntegrityError(f"{label}: no files under {root or 'its top level'!r}")
    return got


def from_archive(obtain: Callable[[], Path], a: RemoteArchive, want: Want | None,
                 limits: tuple[int, int], wait: float, drop: bool, dest: Path) -> Want:
    """Obtain an archive and extract its folder into `dest`. `drop`: a cached unpinned copy
    that fails is deleted, so the next fetch downloads it again instead of failing forever."""
    path = obtain()
    opened = signature(path)
    try:
        return _extract(path, a, dest, f"{a.name} ({path})", want, limits)
    except (IntegrityError, Permanent) as e:
        if not drop:
            raise
        raise type(e)(f"{e}; {drop_archive(path, opened, wait)}") from None
