"""Single pinned files (`RemoteFile`, `ArchiveMember`) and `fetch`, of `taskzoo.hub`.

Cache paths, per-file locks, the sources of one file (cache, mirrors, URLs, zip members),
bounded copies and gunzip, the unpinned-archive download cache, and `verify_cache`. The
verification records (`sha256_file`, `verified_file`) are `_verify`'s.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import os
import re
import shutil
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlparse
from urllib.request import url2pathname

from filelock import FileLock, Timeout

from taskzoo.errors import DownloadError, IntegrityError, OfflineError
from taskzoo.hub._base import (
    CHUNK,
    URL_RE,
    Absent,
    Get,
    Permanent,
    cache_root,
    default_lock_timeout,
    get_retrying,
    is_offline,
    make_cache_dir,
    mirrors,
)
from taskzoo.hub._verify import (
    Signature,
    forget,
    judge,
    prune_records,
    remember,
    sha256_file,
    signature,
    verified_file,
)


@dataclass(frozen=True)
class ArchiveMember:
    """A file inside a zip archive at `url` (the archive itself is unpinned; the member is verified)."""

    url: str
    member: str  # path inside the zip, e.g. "SST-2/train.tsv"

    def __str__(self) -> str:
        return f"{self.member} in {self.url}"


@dataclass(frozen=True)
class RemoteFile:
    """A pinned file: `RemoteFile("train.tsv", "ab12...", 1234, ("https://.../train.tsv",))`.

    With `gunzip=True` the sources serve `name` (which must end in ".gz") but the pin is of
    the decompressed content, cached under the name without ".gz": two gzip files with
    different bytes (other compressor, header or level) but the same content both verify.

    >>> RemoteFile("t10k-labels-idx1-ubyte.gz", "ff7bcfd4...", 10008, gunzip=True)  # doctest: +SKIP
    """

    name: str  # file name, e.g. "train.tsv"
    sha256: str  # lowercase hex of the file's bytes (gunzip: of the decompressed bytes)
    size: int  # bytes (gunzip: decompressed)
    urls: tuple[str | ArchiveMember, ...] = ()  # tried in order after the cache and mirrors
    gunzip: bool = False  # sources serve gzip; the pin and the cache are the decompressed file


def _stored_name(f: RemoteFile) -> str:
    """The cached file's name: `name`, or `name` without ".gz" for a gunzip file."""
    return f.name[:-3] if f.gunzip else f.name

def describe(files: dict[str, RemoteFile] | list[RemoteFile]) -> list[dict[str, object]]:
    """Name, sha256 and size of pinned files, for a weights card's dataset entry."""
    items = files.values() if isinstance(files, dict) else files
    # a gunzip pin is of the decompressed content: say so, or the hash reads as the .gz's
    return [{"name": f.name, "sha256": f.sha256, "size": f.size, **({"gunzip": True}
             if f.gunzip else {})} for f in items]

def cached_path(f: RemoteFile) -> Path:
    """Where the verified file lives: `cache_root()/<sha256[:16]>/<name>` (gunzip: without .gz).

    >>> cached_path(RemoteFile("a.txt", "0" * 64, 3)).parts[-2:]
    ('0000000000000000', 'a.txt')
    >>> cached_path(RemoteFile("a.idx.gz", "0" * 64, 3, gunzip=True)).name
    'a.idx'
    """
    return cache_root() / f.sha256.lower()[:16] / _stored_name(f)

def locked(path: Path, timeout: float, what: str) -> contextlib.AbstractContextManager[object]:
    """`<path>.lock`, held until the returned context exits; a DownloadError that says what
    to do when another process does not free it within `timeout` seconds."""
    lock_path = f"{path}.lock"
    try:
        return FileLock(lock_path, timeout=timeout).acquire()
    except Timeout:
        # A hung process would otherwise block every later download of this file forever.
        raise DownloadError(
            f"timed out after {timeout:g} s waiting for the lock {lock_path} on {what}: another "
            f"process holds it (probably downloading or checking the same file). Wait for it to "
            f"finish and try again (TASKZOO_LOCK_TIMEOUT sets the wait in seconds), or, if no "
            f"other taskzoo process is running, delete {lock_path}") from None


def locked_source(path: Path, timeout: float,
                  what: str) -> contextlib.AbstractContextManager[object]:
    """`locked` for one source of several: a lock timeout means this source is stuck, and
    the next one may still work, so it is `Permanent` for this source only."""
    try:
        return locked(path, timeout, what)
    except DownloadError as e:
        raise Permanent(str(e)) from None


def fetch(f: RemoteFile, *, group: str, retries: int = 3, backoff: float = 1.0,
          timeout: float = 30.0, progress: bool | None = None,
          lock_timeout: float | None = None) -> Path:
    """Return the path of a verified local copy of `f`, downloading it if needed.

    `group` names the mirror folder (`<mirror>/<group>/<f.name>`), e.g. the dataset.
    `retries` extra attempts per source, sleeping `backoff * 2**attempt` seconds between.
    `lock_timeout` seconds to wait for another process downloading the same file (None:
    `default_lock_timeout()`, from TASKZOO_LOCK_TIMEOUT, default 600; negative: no limit).
    Raises IntegrityError, OfflineError or DownloadError (all DownloadError subclasses).
    A gunzip file (`f.gunzip`) is decompressed from its source, never to more than `f.size`
    bytes plus one (a gzip bomb stops there), and the decompressed file is returned.

    >>> f = RemoteFile("train.tsv", "9f86d0...", 4, ("https://example.org/train.tsv",))
    >>> fetch(f, group="sst2")  # doctest: +SKIP
    PosixPath('/home/me/.cache/taskzoo/9f86d081884c7d65/train.tsv')
    """
    check_file(f, group)
    wait = default_lock_timeout() if lock_timeout is None else lock_timeout
    target = cached_path(f)
    # Fast path, no lock: cached files are only ever replaced atomically, so reading one is
    # safe; it is hashed only when it changed since it was verified (or never was).
    if verified_file(target, f.sha256, f.size):
        return target
    make_cache_dir(target.parent)
    show = progress if progress is not None else bool(sys.stderr and sys.stderr.isatty())
    get = functools.partial(get_retrying, retries=max(0, retries), backoff=backoff,
                            timeout=timeout, show=show)
    with locked(target, wait, f"{group}/{f.name}"):
        # Another process may have finished while we waited for the lock.
        if cached_ok(target, f) or adopt_sibling(f, target):
            return target
        part = part_path(target)
        failures: list[tuple[str, str, str]] = []  # (source, reason, kind)
        for label, source in _sources(f, group, get, wait):
            try:
                source(part)
            except (IntegrityError, Permanent) as e:
                kind = ("integrity" if isinstance(e, IntegrityError)
                        else "absent" if isinstance(e, Absent) else "error")
                failures.append((label, str(e), kind))
            else:
                os.replace(part, target)  # atomic: readers see nothing or the whole file
                # Just hashed: record its signature after the rename, so it is not hashed again.
                remember(target, f.sha256, signature(target))
                return target
    raise _final_error(f, group, target, failures)


def check_file(f: RemoteFile, group: str) -> None:
    """ValueError for a malformed pin or group."""
    # Mistakes in a spec would otherwise surface as confusing path or hash errors.
    if not re.fullmatch(r"[0-9a-fA-F]{64}", f.sha256):
        raise ValueError(f"RemoteFile {f.name!r}: sha256 must be 64 hex digits, got {f.sha256!r}")
    if not plain_name(f.name):
        raise ValueError(f"RemoteFile name must be a plain file name, got {f.name!r}")
    if f.gunzip and (not f.name.endswith(".gz") or not plain_name(f.name[:-3])):
        raise ValueError(f"RemoteFile {f.name!r}: gunzip=True needs a name ending in '.gz'")
    check_group(group)


def plain_name(name: str) -> bool:
    """True for a file name without path separators that is not "", "." or ".."."""
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def check_group(group: str) -> None:
    """ValueError unless `group` is a relative folder without ".."."""
    if not group or ".." in re.split(r"[/\\]", group) or Path(group).is_absolute():
        raise ValueError(f"group must be a relative folder name, got {group!r}")


def part_path(path: Path) -> Path:
    """Where `path` is written before it is verified and renamed into place."""
    return path.with_name(path.name + ".part")


# ---------------------------------------------------------------- the cache, with records


def cached_ok(target: Path, f: RemoteFile) -> bool:
    """Under the lock: is the cached file good? A bad one is deleted, never served.

    A file judged bad on the fast path is not hashed again: its record says what it holds."""
    ok, sig = judge(target, f.sha256, f.size)
    if not ok and sig is not None:  # wrong size or wrong bytes: stale or damaged
        target.unlink(missing_ok=True)
        forget(target)
    return ok


def adopt_sibling(f: RemoteFile, target: Path) -> bool:
    """The cache key is the hash: reuse a same-content file saved under another name."""
    for other in sorted(target.parent.iterdir()):
        if other.name == target.name or other.name.endswith((".part", ".lock")) \
                or not other.is_file():
            continue
        # Check it in full: the directory key is only a 16-digit prefix of the pin.
        if not verified_file(other, f.sha256, f.size):
            continue
        part = part_path(target)
        part.unlink(missing_ok=True)
        try:
            os.link(other, part)
        except OSError:  # filesystems without hard links
            shutil.copyfile(other, part)
        os.replace(part, target)
        remember(target, f.sha256, signature(target))  # just checked: no second hash
        return True
    return False


def copy_stream(inp: BinaryIO, part: Path, limit: int | None = None) -> None:
    """Copy at most `limit` bytes into `part` (from zero), then fsync."""
    left = limit
    with open(part, "wb") as out:
        while chunk := inp.read(CHUNK if left is None else min(CHUNK, left)):
            out.write(chunk)
            left = None if left is None else left - len(chunk)
        out.flush()
        os.fsync(out.fileno())


def _verify_part(part: Path, f: RemoteFile, source: str) -> None:
    size = part.stat().st_size
    digest = sha256_file(part) if size == f.size else None
    if digest == f.sha256.lower():
        return
    part.unlink(missing_ok=True)
    if digest is None and f.gunzip and size > f.size:  # stopped one byte over the pin
        got = f"decompresses to more than {f.size} bytes (stopped there)"
    elif digest is None:
        got = f"size {size} bytes, expected {f.size}"
    else:
        got = f"sha256 {digest}, expected {f.sha256.lower()}"
    what = f"{f.name} (decompressed)" if f.gunzip else f.name
    raise IntegrityError(f"{what} from {source}: {got}; discarded")


def _gunzip_into(inp: BinaryIO, part: Path, f: RemoteFile, source: str) -> None:
    """Decompress `inp` into `part`, at most one byte past the pin: a gzip bomb costs at most
    `f.size + 1` bytes of disk and the CPU to inflate them, and `_verify_part` rejects it."""
    try:
        with gzip.GzipFile(fileobj=inp, mode="rb") as gz:
            copy_stream(gz, part, f.size + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        part.unlink(missing_ok=True)
        raise IntegrityError(f"{f.name} from {source}: not a valid gzip file ({e}); "
                             f"discarded") from None


def _sources(f: RemoteFile, group: str, get: Get,
             wait: float) -> list[tuple[str, Callable[[Path], None]]]:
    out: list[tuple[str, Callable[[Path], None]]] = []
    for m in mirrors():
        if URL_RE.match(m):
            url = f"{m}/{quote(group)}/{quote(f.name)}"
            out.append((f"mirror {url}", functools.partial(from_url, url, f, get)))
        else:
            path = Path(m) / group / f.name
            out.append((f"mirror {path}", functools.partial(from_local, path, f)))
    for u in f.urls:
        if isinstance(u, ArchiveMember):
            out.append((str(u), functools.partial(_from_member, u, f, get, wait=wait)))
        else:
            out.append((u, functools.partial(from_url, u, f, get)))
    return out


def from_local(src: Path, f: RemoteFile, part: Path) -> None:
    """Copy `f` from a local file into `part`, verified (gunzip: decompressed, bounded)."""
    if not src.is_file():
        raise Absent(f"not found at {src}")
    if f.gunzip:  # the compressed size is not pinned: decompress (bounded) and check that
        with open(src, "rb") as inp:
            _gunzip_into(inp, part, f, str(src))
    else:
        if (size := src.stat().st_size) != f.size:  # don't copy what cannot verify
            raise IntegrityError(f"{f.name} from {src}: size {size} bytes, expected {f.size}")
        with open(src, "rb") as inp:
            copy_stream(inp, part)
    _verify_part(part, f, str(src))


def from_url(url: str, f: RemoteFile, get: Get, part: Path) -> None:
    """Download `f` from `url` (http, https or file) into `part`, verified."""
    scheme = urlparse(url).scheme.lower()
    if scheme == "file":
        return from_local(Path(url2pathname(urlparse(url).path)), f, part)
    if scheme not in ("http", "https"):
        raise Permanent(f"unsupported URL scheme {scheme!r}")
    if is_offline():
        raise Absent("skipped: TASKZOO_OFFLINE is set")
    if f.gunzip:
        return _gunzip_from_url(url, f, get, part)
    have = part.stat().st_size if part.exists() else 0
    get(url, part, f.size, f.name)
    try:
        _verify_part(part, f, url)
    except IntegrityError:
        if not have:
            raise
        # The resumed prefix may have come from another source or a bad run: redo from zero.
        get(url, part, f.size, f.name)
        _verify_part(part, f, url)


def _gunzip_from_url(url: str, f: RemoteFile, get: Get, part: Path) -> None:
    # The compressed bytes are downloaded to their own `<name>.gz.part` first, so a dropped
    # connection resumes with Range like any download (inflating straight from the socket
    # could not resume). Their size is not pinned, only capped: deflate never grows data by
    # more than a fraction of a percent, so an endless body is cut off well before the disk is.
    zpart = part.with_name(f.name + ".part")
    cap = f.size + f.size // 16 + (1 << 20)
    for fresh in (False, True):
        if fresh:
            zpart.unlink(missing_ok=True)
        resumed = zpart.exists() and zpart.stat().st_size > 0
        get(url, zpart, None, f.name, cap=cap)
        try:
            with open(zpart, "rb") as inp:
                _gunzip_into(inp, part, f, url)
            _verify_part(part, f, url)
        except IntegrityError:
            if resumed and not fresh:
                continue  # the resumed prefix may be another source's: redo from zero
            zpart.unlink(missing_ok=True)
            raise
        zpart.unlink(missing_ok=True)
        return


def _from_member(am: ArchiveMember, f: RemoteFile, get: Get, part: Path, *,
                 wait: float) -> None:
    archive = fetch_archive(am.url, get, wait)
    opened = signature(archive)
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(am.member) as inp:
            if f.gunzip:
                _gunzip_into(inp, part, f, str(am))
            else:  # one byte over is enough for _verify_part to reject
                copy_stream(inp, part, f.size + 1)
    except IntegrityError as e:  # not gzip: same as failing the pin (below)
        raise IntegrityError(f"{e}; {drop_archive(archive, opened, wait)}") from None
    except KeyError:
        raise Permanent(f"archive has no member {am.member!r} ({archive})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        # corrupt cached archive: re-download next time
        raise Permanent(f"archive {archive} is corrupt ({e}); "
                        f"{drop_archive(archive, opened, wait)}") from None
    try:
        _verify_part(part, f, str(am))
    except IntegrityError as e:
        # The archive is not pinned: a stale or damaged copy kept in the cache would fail
        # the same way on every later fetch, so let the next fetch download it again.
        raise IntegrityError(f"{e}; {drop_archive(archive, opened, wait)}") from None


def drop_archive(archive: Path, opened: Signature | None, wait: float) -> str:
    """Delete the cached archive we read (not a fresher copy); say what happened."""
    try:
        with locked(archive, wait, f"archive {archive}"):
            if signature(archive) == opened:
                archive.unlink(missing_ok=True)
    except DownloadError as e:
        return f"could not delete the cached archive: {e}"
    return f"deleted the cached archive {archive}, so the next fetch downloads it again"


def fetch_archive(url: str, get: Get, wait: float, *,
                  check: Callable[[Path], bool] = zipfile.is_zipfile, kind: str = "zip",
                  cap: int | None = None) -> Path:
    """Download an unpinned archive once into cache_root()/archives, kept for other members
    (`check` tells its format; `cap` bounds the download)."""
    parsed = urlparse(url)
    name = os.path.basename(parsed.path) or "archive.zip"
    dest = cache_root() / "archives" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if dest.is_file():
        return dest
    make_cache_dir(dest.parent)
    held = locked_source(dest, wait, f"archive {url}")
    with held:
        if dest.is_file():
            return dest
        part, scheme = part_path(dest), parsed.scheme.lower()
        if scheme == "file":
            if not (src := Path(url2pathname(parsed.path))).is_file():
                raise Absent(f"archive not found at {src}")
            with open(src, "rb") as inp:
                copy_stream(inp, part)
        elif scheme not in ("http", "https"):
            raise Permanent(f"unsupported URL scheme {scheme!r}")
        elif is_offline():
            raise Absent("skipped: TASKZOO_OFFLINE is set and the archive is not cached")
        else:
            get(url, part, None, name, cap=cap)
        if not check(part):
            part.unlink(missing_ok=True)
            raise Permanent(f"{url} is not a {kind} archive")
        os.replace(part, dest)
    return dest

def _final_error(f: RemoteFile, group: str, target: Path,
                 failures: list[tuple[str, str, str]]) -> DownloadError:
    tried = "".join(f"\n  - {src}: {why}" for src, why, _ in failures)
    if f.gunzip:
        what = (f"{group}/{f.name} (gzip of sha256 {f.sha256.lower()}, {f.size} bytes "
                f"decompressed)")
        put = f"Put the decompressed file at: {target}"
    else:
        what = f"{group}/{f.name} (sha256 {f.sha256.lower()}, {f.size} bytes)"
        put = f"Put the file at: {target}"
    if is_offline():
        hint = (f"unset TASKZOO_OFFLINE to download it from {f.urls[0]}" if f.urls else
                "unset TASKZOO_OFFLINE (no canonical URL is known for it)")
        return OfflineError(
            f"{what} is not available offline (TASKZOO_OFFLINE is set).\n"
            f"{put}\n"
            f"or set TASKZOO_MIRROR to a folder holding {group}/{f.name},\n"
            f"or {hint}." + (f"\nSources tried:{tried}" if failures else ""))
    if not failures:
        return DownloadError(f"could not fetch {what}: it has no URL and no mirror is set; set "
                             f"TASKZOO_MIRROR to a folder holding {group}/{f.name} or put the "
                             f"file at {target}")
    kinds = {k for _, _, k in failures}
    cls = IntegrityError if "integrity" in kinds and "error" not in kinds else DownloadError
    return cls(f"could not fetch {what}; tried:{tried}\n"
               f"Without network: set TASKZOO_MIRROR to a folder holding {group}/{f.name}, "
               f"or put the verified file at {target}")

def verify_cache(*, delete: bool = True) -> list[tuple[Path, str]]:
    """Rehash every cached file against the sha256 prefix of its folder.

    Returns (path, "ok" | "corrupt" | "deleted") per file; leftover `.part` and `.lock`
    files are skipped. A good file's verification record is refreshed and a bad one's
    dropped; records of files that no longer exist are removed. `taskzoo verify` prints
    this. Waits at most `default_lock_timeout()` for a file another process is writing.
    """
    root = cache_root()
    report: list[tuple[Path, str]] = []
    if not root.is_dir():
        return report
    wait = default_lock_timeout()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not re.fullmatch(r"[0-9a-f]{16}", folder.name):
            continue  # not a content folder (e.g. extracted archives, verification records)
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.suffix in (".part", ".lock"):
                continue
            with locked(path, wait, str(path)):  # never judge a file another process is writing
                sig = signature(path)
                digest = sha256_file(path)
                if digest[:16] == folder.name:
                    remember(path, digest, sig if signature(path) == sig else None)
                    report.append((path, "ok"))
                    continue
                forget(path)
                if delete:
                    path.unlink()
                    report.append((path, "deleted"))
                else:
                    report.append((path, "corrupt"))
    prune_records(root / "verified")
    return report
