"""The one verified download layer for datasets and pretrained weights.

A file is pinned by (name, sha256, size). `fetch` tries the cache, the mirrors from
TASKZOO_MIRROR, then the canonical URLs; it downloads to `<cached>.part` (resumed with HTTP
Range), checks size and sha256, and only then renames into place. A file whose hash does
not match is never moved into place or returned. What was verified is recorded (the file's
stat signature with the sha256 it matched, under `cache_root()/verified`), so an unchanged
file is not hashed again and a changed one is. TASKZOO_HOME sets the cache root,
TASKZOO_OFFLINE=1 forbids network connections and TASKZOO_LOCK_TIMEOUT (seconds, default 600)
bounds the wait for another process's download lock.

A file can be pinned by its decompressed content (`RemoteFile(..., gunzip=True)`): the
sources serve `name.gz`, the cache holds the verified decompressed file. A dataset can also
be a folder (`RemoteFolder`): a manifest of (path, sha256, size) per file, obtained from a
mirror folder or from a zip/tar archive (`RemoteArchive`) extracted safely; `fetch_folder`
returns the verified folder in the cache.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import importlib.metadata
import json
import math
import os
import re
import secrets
import shutil
import socket
import ssl
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, urlparse
from urllib.request import url2pathname

from filelock import FileLock, Timeout

from taskzoo.errors import DataError, DownloadError, IntegrityError, OfflineError, UsageError
from taskzoo.files import write_bytes, write_json, write_text

__all__ = ["ArchiveMember", "RemoteFile", "RemoteArchive", "RemoteFolder", "Manifest",
           "cache_root", "mirrors", "is_offline", "cached_path", "cached_folder", "fetch",
           "fetch_folder", "build_manifest", "format_manifest", "parse_manifest",
           "read_manifest", "write_manifest", "sha256_file", "verified_file",
           "default_lock_timeout"]

CHUNK = 1 << 20
LOCK_TIMEOUT = 600.0  # seconds to wait for another process's lock; TASKZOO_LOCK_TIMEOUT overrides
_TRUTHY = {"1", "true", "yes", "on"}
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Network failures worth retrying; OSErrors from the local disk are deliberately not here.
# ssl.SSLError is an OSError that urllib does not wrap when it comes from reading the
# response (status line, headers or body): a TLS record error is a network failure too.
_NET_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
               ssl.SSLError)


class _Get(Protocol):
    """One HTTP download of `url` into `part`, with retries and resume. `limit`: the exact
    size expected (None: unknown); `cap`: the most bytes accepted when `limit` is None."""

    def __call__(self, url: str, part: Path, limit: int | None, desc: str, *,
                 cap: int | None = None) -> None: ...


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


class _Transient(Exception):
    """Worth retrying the same source after a backoff."""


class _Permanent(Exception):
    """This source failed; move on to the next one."""


class _Absent(_Permanent):
    """The source lacks the file (404, no mirror copy, offline): not a real failure."""


def describe(files: dict[str, RemoteFile] | list[RemoteFile]) -> list[dict[str, object]]:
    """Name, sha256 and size of pinned files, for a weights card's dataset entry."""
    items = files.values() if isinstance(files, dict) else files
    # a gunzip pin is of the decompressed content: say so, or the hash reads as the .gz's
    return [{"name": f.name, "sha256": f.sha256, "size": f.size, **({"gunzip": True}
             if f.gunzip else {})} for f in items]


def cache_root() -> Path:
    """Root of the download cache: $TASKZOO_HOME, else the platform cache dir.

    >>> cache_root()  # doctest: +SKIP
    PosixPath('/home/me/.cache/taskzoo')
    """
    if home := os.environ.get("TASKZOO_HOME"):
        return Path(home).expanduser()
    import platformdirs  # lazy: only needed when TASKZOO_HOME is unset

    return Path(platformdirs.user_cache_dir("taskzoo"))


def mirrors() -> list[str]:
    """Mirrors from $TASKZOO_MIRROR (comma/whitespace separated): absolute dirs or base URLs.

    >>> mirrors()  # TASKZOO_MIRROR="data/m, https://example.org/tz/"  # doctest: +SKIP
    ['/home/me/data/m', 'https://example.org/tz']
    """
    out = []
    for entry in re.split(r"[,\s]+", os.environ.get("TASKZOO_MIRROR", "").strip()):
        if entry:
            out.append(entry.rstrip("/") if _URL_RE.match(entry)
                       else os.path.abspath(os.path.expanduser(entry)))
    return out


def is_offline() -> bool:
    """True when $TASKZOO_OFFLINE is 1/true/yes/on (any case).

    >>> is_offline()  # TASKZOO_OFFLINE=Yes  # doctest: +SKIP
    True
    """
    return os.environ.get("TASKZOO_OFFLINE", "").strip().lower() in _TRUTHY


def cached_path(f: RemoteFile) -> Path:
    """Where the verified file lives: `cache_root()/<sha256[:16]>/<name>` (gunzip: without .gz).

    >>> cached_path(RemoteFile("a.txt", "0" * 64, 3)).parts[-2:]
    ('0000000000000000', 'a.txt')
    >>> cached_path(RemoteFile("a.idx.gz", "0" * 64, 3, gunzip=True)).name
    'a.idx'
    """
    return cache_root() / f.sha256.lower()[:16] / _stored_name(f)


def default_lock_timeout() -> float:
    """Seconds to wait for a lock another process holds: $TASKZOO_LOCK_TIMEOUT, else 600.

    A negative value waits without limit.

    >>> default_lock_timeout()  # TASKZOO_LOCK_TIMEOUT=30  # doctest: +SKIP
    30.0
    """
    raw = os.environ.get("TASKZOO_LOCK_TIMEOUT", "").strip()
    if not raw:
        return LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise UsageError(f"TASKZOO_LOCK_TIMEOUT must be a number of seconds, got {raw!r}")
    return value


def _locked(path: Path, timeout: float, what: str) -> contextlib.AbstractContextManager[object]:
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


def _locked_source(path: Path, timeout: float,
                   what: str) -> contextlib.AbstractContextManager[object]:
    """`_locked` for one source of several: a lock timeout means this source is stuck, and
    the next one may still work, so it is `_Permanent` for this source only."""
    try:
        return _locked(path, timeout, what)
    except DownloadError as e:
        raise _Permanent(str(e)) from None


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
    _check(f, group)
    wait = default_lock_timeout() if lock_timeout is None else lock_timeout
    target = cached_path(f)
    # Fast path, no lock: cached files are only ever replaced atomically, so reading one is
    # safe; it is hashed only when it changed since it was verified (or never was).
    if verified_file(target, f.sha256, f.size):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    show = progress if progress is not None else bool(sys.stderr and sys.stderr.isatty())
    get = functools.partial(_get_retrying, retries=max(0, retries), backoff=backoff,
                            timeout=timeout, show=show)
    with _locked(target, wait, f"{group}/{f.name}"):
        # Another process may have finished while we waited for the lock.
        if _cached_ok(target, f) or _adopt_sibling(f, target):
            return target
        part = _part(target)
        failures: list[tuple[str, str, str]] = []  # (source, reason, kind)
        for label, source in _sources(f, group, get, wait):
            try:
                source(part)
            except (IntegrityError, _Permanent) as e:
                kind = ("integrity" if isinstance(e, IntegrityError)
                        else "absent" if isinstance(e, _Absent) else "error")
                failures.append((label, str(e), kind))
            else:
                os.replace(part, target)  # atomic: readers see nothing or the whole file
                # Just hashed by _verify (os.replace keeps inode and mtime): record, don't rehash.
                _remember(target, f.sha256, _signature(target))
                return target
    raise _final_error(f, group, target, failures)


def _check(f: RemoteFile, group: str) -> None:
    # Mistakes in a spec would otherwise surface as confusing path or hash errors.
    if not re.fullmatch(r"[0-9a-fA-F]{64}", f.sha256):
        raise ValueError(f"RemoteFile {f.name!r}: sha256 must be 64 hex digits, got {f.sha256!r}")
    if not _plain_name(f.name):
        raise ValueError(f"RemoteFile name must be a plain file name, got {f.name!r}")
    if f.gunzip and (not f.name.endswith(".gz") or not _plain_name(f.name[:-3])):
        raise ValueError(f"RemoteFile {f.name!r}: gunzip=True needs a name ending in '.gz'")
    _check_group(group)


def _plain_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _check_group(group: str) -> None:
    if not group or ".." in re.split(r"[/\\]", group) or Path(group).is_absolute():
        raise ValueError(f"group must be a relative folder name, got {group!r}")


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


# ---------------------------------------------------------------- verification records
# A record says: the file at this absolute path, with this stat signature, has this sha256.
# The signature changes when the file is rewritten, replaced or resized, so a matching record
# saves rehashing a file on every use; anything that changes it brings the hash back.
_Signature = tuple[int, int, int, int]  # (size, st_mtime_ns, st_ino, st_dev)


def verified_file(path: Path, sha256: str, size: int) -> bool:
    """True when `path` holds exactly the bytes pinned by (sha256, size).

    Hashes the file only when it has no verification record or its size, mtime, inode or
    device changed since the record was made. Each hash is recorded (with that stat
    signature) under `cache_root()/verified`; when the cache root is not writable nothing
    is recorded and the file is simply hashed again next time.

    >>> verified_file(Path("bilstm.sst2.safetensors"), "9f86d0...", 4181052)  # doctest: +SKIP
    True
    """
    return _judge(Path(path), sha256, size)[0]


def _signature(path: Path) -> _Signature | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def _judge(path: Path, sha256: str, size: int) -> tuple[bool, _Signature | None]:
    """(whether `path` is the pinned content, the signature judged; None: absent or unsure)."""
    sig = _signature(path)
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
    if _signature(path) != sig:  # changed while we read it: no verdict either way
        return False, None
    _remember(path, digest, sig)  # what it is, even when it is not what was asked for
    return digest == want, sig


def _record_path(path: Path) -> Path:
    key = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:24]
    return cache_root() / "verified" / f"{key}.json"


def _record(path: Path, sha256: str, sig: _Signature) -> dict[str, object]:
    size, mtime_ns, ino, dev = sig
    return {"path": os.path.abspath(path), "sha256": sha256.lower(), "size": size,
            "mtime_ns": mtime_ns, "ino": ino, "dev": dev}


def _recalled(path: Path) -> object:
    try:
        return json.loads(_record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, unreadable or damaged: hash instead
        return None


def _remember(path: Path, sha256: str, sig: _Signature | None) -> None:
    if sig is None:
        return
    try:
        write_json(_record_path(path), _record(path, sha256, sig))
    except OSError:  # a read-only cache root: rehash next time instead of failing
        pass


def _forget(path: Path) -> None:
    with contextlib.suppress(OSError):
        _record_path(path).unlink(missing_ok=True)


def _cached_ok(target: Path, f: RemoteFile) -> bool:
    """Under the lock: is the cached file good? A bad one is deleted, never served.

    A file judged bad on the fast path is not hashed again: its record says what it holds."""
    ok, sig = _judge(target, f.sha256, f.size)
    if not ok and sig is not None:  # wrong size or wrong bytes: stale or damaged
        target.unlink(missing_ok=True)
        _forget(target)
    return ok


def _adopt_sibling(f: RemoteFile, target: Path) -> bool:
    """The cache key is the hash: reuse a same-content file saved under another name."""
    for other in sorted(target.parent.iterdir()):
        if other.name == target.name or other.name.endswith((".part", ".lock")) \
                or not other.is_file():
            continue
        # Check it in full: the directory key is only a 16-digit prefix of the pin.
        if not verified_file(other, f.sha256, f.size):
            continue
        part = _part(target)
        part.unlink(missing_ok=True)
        try:
            os.link(other, part)
        except OSError:  # filesystems without hard links
            shutil.copyfile(other, part)
        os.replace(part, target)
        _remember(target, f.sha256, _signature(target))  # just checked: no second hash
        return True
    return False


def _copy_stream(inp: BinaryIO, part: Path, limit: int | None = None) -> None:
    """Copy at most `limit` bytes into `part` (from zero), then fsync."""
    left = limit
    with open(part, "wb") as out:
        while chunk := inp.read(CHUNK if left is None else min(CHUNK, left)):
            out.write(chunk)
            left = None if left is None else left - len(chunk)
        out.flush()
        os.fsync(out.fileno())


def _verify(part: Path, f: RemoteFile, source: str) -> None:
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
    `f.size + 1` bytes of disk and the CPU to inflate them, and `_verify` rejects it."""
    try:
        with gzip.GzipFile(fileobj=inp, mode="rb") as gz:
            _copy_stream(gz, part, f.size + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        part.unlink(missing_ok=True)
        raise IntegrityError(f"{f.name} from {source}: not a valid gzip file ({e}); "
                             f"discarded") from None


def _sources(f: RemoteFile, group: str, get: _Get,
             wait: float) -> list[tuple[str, Callable[[Path], None]]]:
    out: list[tuple[str, Callable[[Path], None]]] = []
    for m in mirrors():
        if _URL_RE.match(m):
            url = f"{m}/{quote(group)}/{quote(f.name)}"
            out.append((f"mirror {url}", functools.partial(_from_url, url, f, get)))
        else:
            path = Path(m) / group / f.name
            out.append((f"mirror {path}", functools.partial(_from_local, path, f)))
    for u in f.urls:
        if isinstance(u, ArchiveMember):
            out.append((str(u), functools.partial(_from_member, u, f, get, wait=wait)))
        else:
            out.append((u, functools.partial(_from_url, u, f, get)))
    return out


def _from_local(src: Path, f: RemoteFile, part: Path) -> None:
    if not src.is_file():
        raise _Absent(f"not found at {src}")
    if f.gunzip:  # the compressed size is not pinned: decompress (bounded) and check that
        with open(src, "rb") as inp:
            _gunzip_into(inp, part, f, str(src))
    else:
        if (size := src.stat().st_size) != f.size:  # don't copy what cannot verify
            raise IntegrityError(f"{f.name} from {src}: size {size} bytes, expected {f.size}")
        with open(src, "rb") as inp:
            _copy_stream(inp, part)
    _verify(part, f, str(src))


def _from_url(url: str, f: RemoteFile, get: _Get, part: Path) -> None:
    scheme = urlparse(url).scheme.lower()
    if scheme == "file":
        return _from_local(Path(url2pathname(urlparse(url).path)), f, part)
    if scheme not in ("http", "https"):
        raise _Permanent(f"unsupported URL scheme {scheme!r}")
    if is_offline():
        raise _Absent("skipped: TASKZOO_OFFLINE is set")
    if f.gunzip:
        return _gunzip_from_url(url, f, get, part)
    have = part.stat().st_size if part.exists() else 0
    get(url, part, f.size, f.name)
    try:
        _verify(part, f, url)
    except IntegrityError:
        if not have:
            raise
        # The resumed prefix may have come from another source or a bad run: redo from zero.
        get(url, part, f.size, f.name)
        _verify(part, f, url)


def _gunzip_from_url(url: str, f: RemoteFile, get: _Get, part: Path) -> None:
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
            _verify(part, f, url)
        except IntegrityError:
            if resumed and not fresh:
                continue  # the resumed prefix may be another source's: redo from zero
            zpart.unlink(missing_ok=True)
            raise
        zpart.unlink(missing_ok=True)
        return


def _from_member(am: ArchiveMember, f: RemoteFile, get: _Get, part: Path, *,
                 wait: float) -> None:
    archive = _fetch_archive(am.url, get, wait)
    opened = _signature(archive)
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(am.member) as inp:
            if f.gunzip:
                _gunzip_into(inp, part, f, str(am))
            else:  # one byte over is enough for _verify to reject
                _copy_stream(inp, part, f.size + 1)
    except IntegrityError as e:  # not gzip: same as failing the pin (below)
        raise IntegrityError(f"{e}; {_drop_archive(archive, opened, wait)}") from None
    except KeyError:
        raise _Permanent(f"archive has no member {am.member!r} ({archive})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        # corrupt cached archive: re-download next time
        raise _Permanent(f"archive {archive} is corrupt ({e}); "
                         f"{_drop_archive(archive, opened, wait)}") from None
    try:
        _verify(part, f, str(am))
    except IntegrityError as e:
        # The archive is not pinned: a stale or damaged copy kept in the cache would fail
        # the same way on every later fetch, so let the next fetch download it again.
        raise IntegrityError(f"{e}; {_drop_archive(archive, opened, wait)}") from None


def _drop_archive(archive: Path, opened: _Signature | None, wait: float) -> str:
    """Delete the cached archive we read (not a fresher copy); say what happened."""
    try:
        with _locked(archive, wait, f"archive {archive}"):
            if _signature(archive) == opened:
                archive.unlink(missing_ok=True)
    except DownloadError as e:
        return f"could not delete the cached archive: {e}"
    return f"deleted the cached archive {archive}, so the next fetch downloads it again"


def _fetch_archive(url: str, get: _Get, wait: float, *,
                   check: Callable[[Path], bool] = zipfile.is_zipfile, kind: str = "zip",
                   cap: int | None = None) -> Path:
    """Download an unpinned archive once into cache_root()/archives, kept for other members
    (`check` tells its format; `cap` bounds the download)."""
    parsed = urlparse(url)
    name = os.path.basename(parsed.path) or "archive.zip"
    dest = cache_root() / "archives" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    held = _locked_source(dest, wait, f"archive {url}")
    with held:
        if dest.is_file():
            return dest
        part, scheme = _part(dest), parsed.scheme.lower()
        if scheme == "file":
            if not (src := Path(url2pathname(parsed.path))).is_file():
                raise _Absent(f"archive not found at {src}")
            with open(src, "rb") as inp:
                _copy_stream(inp, part)
        elif scheme not in ("http", "https"):
            raise _Permanent(f"unsupported URL scheme {scheme!r}")
        elif is_offline():
            raise _Absent("skipped: TASKZOO_OFFLINE is set and the archive is not cached")
        else:
            get(url, part, None, name, cap=cap)
        if not check(part):
            part.unlink(missing_ok=True)
            raise _Permanent(f"{url} is not a {kind} archive")
        os.replace(part, dest)
    return dest


def _get_retrying(url: str, part: Path, limit: int | None, desc: str, *, retries: int,
                  backoff: float, timeout: float, show: bool, cap: int | None = None) -> None:
    for attempt in range(retries + 1):
        try:
            return _http_download(url, part, limit, desc, timeout=timeout, show=show, cap=cap)
        except _Transient as e:
            if attempt == retries:
                raise _Permanent(f"{e} (gave up after {retries + 1} attempts)") from None
            time.sleep(backoff * 2**attempt)


@functools.lru_cache(maxsize=1)
def _user_agent() -> str:
    try:
        version = importlib.metadata.version("taskzoo")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"taskzoo/{version}"


def _http_download(url: str, part: Path, limit: int | None, desc: str, *, timeout: float,
                   show: bool, cap: int | None = None) -> None:
    """One attempt: fetch `url` into `part`, resuming from its current length.

    `limit` is the exact size expected (more is rejected, less is a truncation); without
    one, `cap` only rejects more than `cap` bytes (unpinned archives, gzip sources)."""
    upper = limit if limit is not None else cap
    have = part.stat().st_size if part.exists() else 0
    if upper is not None and have > upper:
        part.unlink()
        have = 0
    req = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:  # the server disowns our .part as a prefix: start over
            part.unlink(missing_ok=True)
            return _http_download(url, part, limit, desc, timeout=timeout, show=show, cap=cap)
        if e.code == 429 or e.code >= 500:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise (_Absent if e.code in (404, 410) else _Permanent)(f"HTTP {e.code} {e.reason}") \
            from None
    except _NET_ERRORS as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.gaierror):
            # No DNS answer will not change in a few seconds (offline machine): fail this source now.
            raise _Permanent(f"cannot resolve host ({reason})") from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            # Nor will a certificate the system does not trust: move on to the next source.
            raise _Permanent(f"TLS certificate not accepted ({reason})") from None
        what = "TLS error" if isinstance(reason, ssl.SSLError) else "connection failed"
        raise _Transient(f"{what}: {e}") from None

    from tqdm import tqdm  # lazy: keeps `import taskzoo` light

    with resp:
        start = 0
        if resp.status == 206:
            m = re.match(r"bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                part.unlink(missing_ok=True)
                raise _Transient(f"bad Content-Range {resp.headers.get('Content-Range')!r}")
            start = have
        length = resp.headers.get("Content-Length", "")
        expected = start + int(length) if length.isdigit() else None
        if upper is not None and expected is not None and expected > upper:
            part.unlink(missing_ok=True)
            want_s = f"expected {limit}" if limit is not None else f"more than the {cap} allowed"
            raise IntegrityError(f"{desc} from {url}: server announces {expected} bytes, "
                                 f"{want_s}; discarded")
        got = start
        bar = tqdm(total=limit or expected, initial=start, unit="B", unit_scale=True,
                   unit_divisor=1024, desc=desc, file=sys.stderr, disable=not show, leave=False)
        # A 200 means the server ignored Range (or we sent none): restart from zero.
        with bar, open(part, "ab" if start else "wb") as out:
            try:
                while chunk := resp.read(CHUNK):
                    got += len(chunk)
                    if upper is not None and got > upper:
                        break  # more than the pin (or cap): stop reading, rejected below
                    out.write(chunk)
                    bar.update(len(chunk))
            except _NET_ERRORS as e:
                what = "TLS error" if isinstance(e, ssl.SSLError) else "connection lost"
                raise _Transient(f"{what} after {got} bytes: {e}") from None
            finally:  # keep what arrived, for the next attempt's Range request
                out.flush()
                os.fsync(out.fileno())
    if upper is not None and got > upper:
        part.unlink(missing_ok=True)
        raise IntegrityError(f"{desc} from {url}: more than {upper} bytes; discarded")
    want = max(x for x in (expected, limit, 0) if x is not None)
    if got < want:
        raise _Transient(f"truncated body: {got} of {want} bytes")


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


def read_url(url: str, *, limit: int = 1 << 20, timeout: float = 30.0) -> bytes:
    """The body of a small unpinned document (a weights card), at most `limit` bytes."""
    if is_offline():
        raise OfflineError(f"TASKZOO_OFFLINE is set: not reading {url}")
    req = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read(limit + 1)
    except (*_NET_ERRORS, OSError) as e:
        raise DownloadError(f"cannot read {url}: {e}") from None
    if len(body) > limit:
        raise DownloadError(f"{url}: more than {limit} bytes; not a card")
    return body


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
            with _locked(path, wait, str(path)):  # never judge a file another process is writing
                sig = _signature(path)
                digest = sha256_file(path)
                if digest[:16] == folder.name:
                    _remember(path, digest, sig if _signature(path) == sig else None)
                    report.append((path, "ok"))
                    continue
                _forget(path)
                if delete:
                    path.unlink()
                    report.append((path, "deleted"))
                else:
                    report.append((path, "corrupt"))
    _prune_records(root / "verified")
    return report


def _prune_records(folder: Path) -> None:
    """Drop verification records of files that are gone (and unreadable records)."""
    if not folder.is_dir():
        return
    for rec in folder.glob("*.json"):
        try:
            path = json.loads(rec.read_text(encoding="utf-8"))["path"]
            if os.path.exists(path):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            pass
        with contextlib.suppress(OSError):
            rec.unlink()


# ---------------------------------------------------------------- pinned folders
# A folder is pinned by a manifest: (relative posix path, sha256, size) for every file. It is
# built in a temporary sibling `.<name>.tmp-*` (copied from a mirror folder or extracted from
# an archive), verified file by file while written, renamed into place in one step, and only
# then marked complete by `<name>.complete.json` beside it. The marker holds each file's
# sha256 and stat signature: the folder's verification record, so a later fetch stats the
# files instead of hashing them and rehashes only a file whose signature changed.

ManifestEntry = tuple[str, str, int]  # (relative posix path, sha256 hex, size in bytes)
Manifest = tuple[ManifestEntry, ...]
_Want = dict[str, tuple[str, int]]  # path -> (sha256, size)

DEFAULT_MAX_BYTES = 64 << 30  # extracted bytes allowed from a pinned archive without manifest
DEFAULT_MAX_FILES = 1_000_000  # files allowed from a pinned archive without manifest
_MANIFEST_HEADER = "# taskzoo manifest v1: <sha256> <size> <path>, one file per line, sorted"
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


@dataclass(frozen=True)
class RemoteFolder:
    """A pinned folder: a manifest of every file, and archives that hold it.

    >>> faces = RemoteFolder("att_faces", read_manifest(Path("att_faces.txt")),
    ...                      (RemoteArchive("att_faces.zip", urls=("https://.../att_faces.zip",)),))
    ... # doctest: +SKIP
    """

    name: str  # folder name in the cache, e.g. "att_faces"
    manifest: Manifest = ()  # (path, sha256, size) per file; () only with a pinned archive
    archives: tuple[RemoteArchive, ...] = ()


# ---------------------------------------------------------------- manifests


def _safe_rel(rel: object) -> bool:
    """A canonical relative posix path: no absolute, empty, '.', '..' or backslash parts."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or any(
            c in rel for c in "\\\0\n\r"):
        return False
    return all(p not in ("", ".", "..") for p in rel.split("/"))


def build_manifest(path: str | os.PathLike[str]) -> Manifest:
    """(path, sha256, size) of every file under a local folder, sorted by path.

    Symbolic links to files are hashed as their content; linked folders are not entered.

    >>> build_manifest("shared/data/att_faces")[:1]  # doctest: +SKIP
    (('README', 'b9d1fc5a...', 1579),)
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"cannot build a manifest of {root}: not a folder")
    out: list[ManifestEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if not _safe_rel(rel):
                raise DataError(f"cannot build a manifest of {root}: unusable name {rel!r}")
            if full.is_file():
                out.append((rel, sha256_file(full), full.stat().st_size))
    return tuple(sorted(out))


def format_manifest(manifest: Manifest | list[ManifestEntry], *, comment: str = "") -> str:
    """The manifest text: a header, optional `# comment` lines, then `<sha256> <size> <path>`
    per file, sorted by path (the path is the rest of the line, spaces included).

    >>> print(format_manifest([("b.txt", "0" * 64, 3)]), end="")  # doctest: +ELLIPSIS
    # taskzoo manifest v1: ...
    0000000000000000000000000000000000000000000000000000000000000000 3 b.txt
    """
    lines = [_MANIFEST_HEADER]
    lines += [f"# {c}".rstrip() for c in comment.splitlines()]
    lines += [f"{sha.lower()} {size} {rel}" for rel, sha, size in sorted(manifest)]
    return "\n".join(lines) + "\n"


def parse_manifest(text: str, *, source: str = "manifest") -> Manifest:
    """Parse `format_manifest` text; blank and `#` lines are skipped. DataError names the line.

    >>> parse_manifest("# x\\n" + "a" * 64 + " 12 dir/my file.txt\\n")
    (('dir/my file.txt', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 12),)
    """
    out: list[ManifestEntry] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(" ", 2)
        if (len(parts) != 3 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0])
                or not parts[1].isdigit() or not _safe_rel(parts[2])):
            raise DataError(f"{source}:{lineno}: expected '<sha256> <size> <relative path>', "
                            f"got {line[:120]!r}")
        if parts[2] in seen:
            raise DataError(f"{source}:{lineno}: {parts[2]!r} is listed twice")
        seen.add(parts[2])
        out.append((parts[2], parts[0].lower(), int(parts[1])))
    return tuple(sorted(out))


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest file written by `write_manifest` (gzip-compressed when its name ends
    in ".gz").

    >>> read_manifest("taskzoo/data/manifests/att_faces.txt")[0][0]  # doctest: +SKIP
    'README'
    """
    try:
        raw = Path(path).read_bytes()
        if str(path).endswith(".gz"):
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the manifest {path}: {e}") from None
    return parse_manifest(text, source=str(path))


def write_manifest(path: str | os.PathLike[str], manifest: Manifest | list[ManifestEntry], *,
                   comment: str = "") -> None:
    """Write a manifest atomically (see `format_manifest`); a name ending in ".gz" is
    gzip-compressed, reproducibly (no file name or time in the gzip header).

    >>> write_manifest("att_faces.txt", build_manifest("att_faces"), comment="ORL faces")
    ... # doctest: +SKIP
    """
    text = format_manifest(manifest, comment=comment)
    if str(path).endswith(".gz"):
        write_bytes(path, gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    else:
        write_text(path, text)


def _manifest_body(want: _Want) -> str:
    return "".join(f"{want[rel][0]} {want[rel][1]} {rel}\n" for rel in sorted(want))


# ---------------------------------------------------------------- fetch_folder


def cached_folder(folder: RemoteFolder) -> Path:
    """Where the verified folder lives: `cache_root()/folders/<key[:16]>/<name>`, the key
    being the sha256 of its manifest (or of its pinned archives' hashes when it has none).

    >>> cached_folder(RemoteFolder("faces", (("a.pgm", "0" * 64, 1),))).parts[-3::2]
    ('folders', 'faces')
    """
    return cache_root() / "folders" / _folder_key(folder, _check_folder(folder))[:16] / folder.name


def _folder_key(folder: RemoteFolder, want: _Want | None) -> str:
    if want is not None:
        text = _manifest_body(want)
    else:
        text = "archives\n" + "".join(sorted(f"{a.sha256.lower()}\n" for a in folder.archives))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_folder(folder: RemoteFolder) -> _Want | None:
    """The manifest as a dict (None when there is none); ValueError for a malformed spec."""
    if not _plain_name(folder.name):
        raise ValueError(f"RemoteFolder name must be a plain folder name, got {folder.name!r}")
    want: _Want = {}
    for entry in folder.manifest:
        try:
            rel, sha, size = entry
        except (TypeError, ValueError):
            raise ValueError(f"RemoteFolder {folder.name!r}: manifest entries are "
                             f"(path, sha256, size), got {entry!r}") from None
        if not _safe_rel(rel):
            raise ValueError(f"RemoteFolder {folder.name!r}: {rel!r} is not a relative path")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
            raise ValueError(f"RemoteFolder {folder.name!r}: {rel}: sha256 must be 64 hex "
                             f"digits, got {sha!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"RemoteFolder {folder.name!r}: {rel}: bad size {size!r}")
        if rel in want:
            raise ValueError(f"RemoteFolder {folder.name!r}: {rel!r} is listed twice")
        want[rel] = (sha.lower(), size)
    folders = {rel.rsplit("/", i)[0] for rel in want for i in range(1, rel.count("/") + 1)}
    if clash := sorted(folders & want.keys()):
        raise ValueError(f"RemoteFolder {folder.name!r}: {clash[0]!r} is both a file and a folder")
    for a in folder.archives:
        if not _plain_name(a.name):
            raise ValueError(f"RemoteArchive name must be a plain file name, got {a.name!r}")
        if a.sha256:
            _check(a.remote(), "g")
        elif not want:
            raise ValueError(f"RemoteArchive {a.name!r} has no sha256: allowed only when the "
                             f"RemoteFolder {folder.name!r} has a manifest to verify it by")
        if a.root is None and not want:
            raise ValueError(f"RemoteArchive {a.name!r}: root=None (found from the manifest) "
                             f"needs a manifest")
        if a.root and not _safe_rel(a.root.strip("/")):
            raise ValueError(f"RemoteArchive {a.name!r}: root must be a relative folder, "
                             f"got {a.root!r}")
    if not want and not any(a.sha256 for a in folder.archives):
        raise ValueError(f"RemoteFolder {folder.name!r} has neither a manifest nor a pinned "
                         f"archive: nothing to verify it by")
    return want or None


def fetch_folder(folder: RemoteFolder, *, group: str, retries: int = 3, backoff: float = 1.0,
                 timeout: float = 30.0, progress: bool | None = None,
                 lock_timeout: float | None = None, max_bytes: int | None = None,
                 max_files: int | None = None) -> Path:
    """Return the path of a verified local copy of a folder, fetching it if needed.

    Sources in order: the cache (a completed folder); pinned archives already cached; for
    each mirror in TASKZOO_MIRROR, `<mirror>/<group>/` holding the files themselves, then
    `<mirror>/<group>/<archive name>`; then each archive's URLs. Archives are extracted
    into a temporary sibling, verified, and renamed into place; same retries, locks and
    errors as `fetch`. Extraction is safe: an archive with any absolute path, `..`
    component, symbolic or hard link, device or FIFO member (anywhere in it) is refused
    whole; with a manifest only its files are written, each bounded by its pinned size;
    without one (pinned archive) at most `max_bytes`/`max_files` (DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES). An unpinned archive's download is capped at about 1.25 times the
    manifest's total: pin an archive that holds much more than the folder.

    >>> fetch_folder(faces, group="att_faces")  # doctest: +SKIP
    PosixPath('/home/me/.cache/taskzoo/folders/5d0c4e3a9b1f2c77/att_faces')
    """
    _check_group(group)
    want = _check_folder(folder)
    key = _folder_key(folder, want)
    wait = default_lock_timeout() if lock_timeout is None else lock_timeout
    target = cache_root() / "folders" / key[:16] / folder.name
    # Fast path, no lock: the marker is written only after the folder is complete and in place.
    if _folder_ok(target, key, want):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    show = progress if progress is not None else bool(sys.stderr and sys.stderr.isatty())
    get = functools.partial(_get_retrying, retries=max(0, retries), backoff=backoff,
                            timeout=timeout, show=show)
    if want is not None:  # every byte written must be a listed file: nothing more is allowed
        limits = (sum(s for _, s in want.values()), len(want))
    else:
        limits = (DEFAULT_MAX_BYTES if max_bytes is None else max_bytes,
                  DEFAULT_MAX_FILES if max_files is None else max_files)
    failures: list[tuple[str, str, str]] = []
    with _locked(target, wait, f"folder {group}/{folder.name}"):
        if _folder_ok(target, key, want):  # another process finished while we waited
            return target
        _clear_leftovers(target)  # a killed process's temporary folders (we hold the lock)
        if os.path.lexists(target):  # unmarked: put there by hand, or a crash before marking
            try:
                if want is None:
                    raise IntegrityError("no completion marker, and no manifest to check it by")
                entries = _check_in_place(target, want)
            except IntegrityError as e:
                failures.append((f"cache {target}", f"{e}; removed", "integrity"))
                _discard(target)
            else:
                _mark(target, key, entries, f"found in place at {target}")
                return target
        for label, source in _folder_sources(folder, group, want, get, wait, limits):
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
            tmp.mkdir()
            try:
                entries = source(tmp)
            except (IntegrityError, _Permanent) as e:
                shutil.rmtree(tmp, ignore_errors=True)
                kind = ("integrity" if isinstance(e, IntegrityError)
                        else "absent" if isinstance(e, _Absent) else "error")
                failures.append((label, str(e), kind))
                continue
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _sync_tree(tmp)
            os.rename(tmp, target)  # atomic: the folder appears whole or not at all
            _mark(target, key, entries, label)
            return target
    raise _folder_error(folder, group, target, failures, want)


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".complete.json")


def _mark(target: Path, key: str, entries: _Want, source: str) -> None:
    """Write the completion marker, last: each file's sha256 and stat signature."""
    files: dict[str, list[object]] = {}
    for rel, (sha, size) in sorted(entries.items()):
        sig = _signature(target / rel)
        if sig is None or sig[0] != size:  # changed under our feet: leave it unmarked
            return
        files[rel] = [sha, *sig]
    write_json(_marker(target), {"format": 1, "key": key, "name": target.name,
                                 "source": source, "files": files})


def _folder_ok(target: Path, key: str, want: _Want | None) -> bool:
    """Is the cached folder complete and unchanged? Stats every file; hashes only those
    whose signature changed since the marker was written (and updates the marker)."""
    marker = _marker(target)
    try:
        rec = json.loads(marker.read_text(encoding="utf-8"))
        files = rec["files"]
        if rec.get("key") != key or not isinstance(files, dict) or not files:
            return False
        if want is not None and (files.keys() != want.keys() or any(
                (files[r][0], files[r][1]) != want[r] for r in want)):
            return False
        changed = False
        for rel, (sha, size, *sig) in files.items():
            if not _safe_rel(rel):
                return False
            now = _signature(target / rel)
            if now is None or now[0] != size:
                return False
            if list(now) != [size, *sig]:  # touched, copied or restored: same bytes still?
                if sha256_file(target / rel) != sha or _signature(target / rel) != now:
                    return False
                files[rel] = [sha, *now]
                changed = True
    except (OSError, ValueError, KeyError, TypeError):  # no marker, or a damaged one
        return False
    if changed:
        with contextlib.suppress(OSError):
            write_json(marker, rec)
    return True


def _check_in_place(target: Path, want: _Want) -> _Want:
    """Hash every listed file of an unmarked folder; IntegrityError names the bad ones."""
    problems: list[str] = []
    for rel, (sha, size) in sorted(want.items()):
        path = target / rel
        sig = _signature(path)
        if sig is None:
            problems.append(f"{path}: missing")
        elif sig[0] != size:
            problems.append(f"{path}: size {sig[0]} bytes, expected {size}")
        elif (digest := sha256_file(path)) != sha:
            problems.append(f"{path}: sha256 {digest}, expected {sha}")
    if problems:
        raise IntegrityError(_problems(f"{target} does not match the manifest", problems, want))
    return want


def _problems(head: str, problems: list[str], want: _Want) -> str:
    shown = "".join(f"\n      {p}" for p in problems[:10])
    more = f"\n      ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    return f"{head} ({len(problems)} of {len(want)} files wrong):{shown}{more}"


def _clear_leftovers(target: Path) -> None:
    for p in target.parent.iterdir():
        if p.name.startswith((f".{target.name}.tmp-", f".{target.name}.old-")):
            shutil.rmtree(p, ignore_errors=True)


def _discard(target: Path) -> None:
    """Remove a cached folder: marker first, then move it aside, so nothing that looks
    complete (or half-deleted) is ever left at `target`."""
    _marker(target).unlink(missing_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
        return
    aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.rename(target, aside)
    shutil.rmtree(aside, ignore_errors=True)


_FolderSource = Callable[[Path], _Want]  # fills an empty folder, returns what it verified


def _folder_sources(folder: RemoteFolder, group: str, want: _Want | None, get: _Get,
                    wait: float, limits: tuple[int, int]) -> list[tuple[str, _FolderSource]]:
    out: list[tuple[str, _FolderSource]] = []
    cap = None if want is None else _unpinned_cap(want)

    def archive(label: str, a: RemoteArchive, obtain: Callable[[], Path], drop: bool) -> None:
        out.append((label, functools.partial(_from_archive, obtain, a, want, limits, wait, drop)))

    for a in folder.archives:  # a pinned archive fetched before costs no download
        if a.sha256 and os.path.exists(cached := cached_path(a.remote())):
            archive(f"cached archive {cached}", a,
                    functools.partial(_pinned_archive, a, group, _not_cached, wait), False)
    for m in mirrors():
        if _URL_RE.match(m):
            base = f"{m}/{quote(group)}"
            if want is not None:
                out.append((f"mirror {base}/", functools.partial(_folder_from_urls, base, want,
                                                                  get)))
            for a in folder.archives:
                url = f"{base}/{quote(a.name)}"
                if a.sha256:
                    copy = functools.partial(_from_url, url, a.remote(), get)
                    archive(f"mirror {url}", a,
                            functools.partial(_pinned_archive, a, group, copy, wait), False)
                else:
                    archive(f"mirror {url}", a, functools.partial(
                        _fetch_archive, url, get, wait, check=_is_archive, kind="zip or tar",
                        cap=cap), True)
        else:
            d = Path(m) / group
            if want is not None:
                out.append((f"mirror {d}/", functools.partial(_folder_from_dir, d, want)))
            for a in folder.archives:
                if a.sha256:
                    copy = functools.partial(_from_local, d / a.name, a.remote())
                    archive(f"mirror {d / a.name}", a,
                            functools.partial(_pinned_archive, a, group, copy, wait), False)
                else:  # read where it is: not copied, and never deleted
                    archive(f"mirror {d / a.name}", a,
                            functools.partial(_local_archive, d / a.name), False)
    for a in folder.archives:
        for u in a.urls:
            scheme = urlparse(u).scheme.lower()
            if a.sha256:
                copy = functools.partial(_from_url, u, a.remote(), get)
                archive(u, a, functools.partial(_pinned_archive, a, group, copy, wait), False)
            elif scheme == "file":
                archive(u, a, functools.partial(
                    _local_archive, Path(url2pathname(urlparse(u).path))), False)
            else:
                archive(u, a, functools.partial(_fetch_archive, u, get, wait, check=_is_archive,
                                                kind="zip or tar", cap=cap), True)
    return out


def _unpinned_cap(want: _Want) -> int:
    """Most bytes accepted for an unpinned archive of these files: their total plus a
    generous allowance for headers, padding and incompressible data (tar pads each file to
    512 bytes and adds a 512-byte header)."""
    total = sum(s for _, s in want.values())
    return total + total // 4 + 2048 * len(want) + (1 << 20)


def _not_cached(part: Path) -> None:
    raise _Absent("no longer in the cache")


def _local_archive(path: Path) -> Path:
    if not path.is_file():
        raise _Absent(f"not found at {path}")
    return path


def _pinned_archive(a: RemoteArchive, group: str, copy: Callable[[Path], None],
                    wait: float) -> Path:
    """The verified cached copy of a pinned archive, obtained with `copy` if needed."""
    rf = a.remote()
    target = cached_path(rf)
    if verified_file(target, rf.sha256, rf.size):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    held = _locked_source(target, wait, f"{group}/{a.name}")
    with held:
        if _cached_ok(target, rf) or _adopt_sibling(rf, target):
            return target
        part = _part(target)
        copy(part)
        os.replace(part, target)
        _remember(target, rf.sha256, _signature(target))
    return target


def _folder_from_dir(src: Path, want: _Want, dest: Path) -> _Want:
    """Copy the listed files from a mirror folder, verifying each while it is copied."""
    if not src.is_dir():
        raise _Absent(f"no folder {src}")
    missing = [rel for rel in sorted(want) if not (src / rel).is_file()]
    if len(missing) == len(want):
        raise _Absent(f"{src} holds none of the folder's files")
    problems = [f"{src / rel}: missing" for rel in missing]
    for rel, (sha, size) in sorted(want.items()):
        path = src / rel
        if rel in missing:
            continue
        if (n := path.stat().st_size) != size:  # don't copy what cannot verify
            problems.append(f"{path}: size {n} bytes, expected {size}")
            continue
        with open(path, "rb") as inp:
            digest, n = _write_new(inp, dest / rel, size + 1, str(path))
        if (digest, n) != (sha, size):
            problems.append(f"{path}: sha256 {digest}, expected {sha}")
    if problems:
        raise IntegrityError(_problems(f"mirror folder {src} does not match the manifest",
                                       problems, want))
    return want


def _folder_from_urls(base: str, want: _Want, get: _Get, dest: Path) -> _Want:
    """Download the listed files one by one from `<base>/<path>` (an HTTP mirror)."""
    if is_offline():
        raise _Absent("skipped: TASKZOO_OFFLINE is set")
    for i, rel in enumerate(sorted(want)):
        sha, size = want[rel]
        url = f"{base}/{quote(rel)}"
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            get(url, path, size, rel)
        except _Absent:
            if i == 0:
                raise _Absent(f"{base}/ does not serve the folder's files ({url}: "
                              f"not found)") from None
            raise _Permanent(f"{url}: not found (the mirror holds only part of the "
                             f"folder)") from None
        if (digest := sha256_file(path)) != sha:
            raise IntegrityError(f"{url}: sha256 {digest}, expected {sha}; discarded")
    return want


def _write_new(inp: BinaryIO, path: Path, limit: int, source: str) -> tuple[str, int]:
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
                raise _Permanent(f"cannot read {source}: {e}") from None
            if not chunk:
                break
            out.write(chunk)
            h.update(chunk)
            n += len(chunk)
    # no fsync per file: the folder is synced once, before it is renamed into place
    # (`_sync_tree`); 8,000 fsyncs cost Flickr8k 27 s of a 31 s first load
    return h.hexdigest(), n


def _sync_tree(folder: Path) -> None:
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


def _is_archive(path: Path) -> bool:
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
            raise _Permanent(f"{label}: cannot read member {info.filename!r}: {e}") from None

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
        raise _Permanent(f"{label}: not a readable {kind} archive ({type(e).__name__}: "
                         f"{e})") from None


def _find_root(members: list[_Member], want: _Want, label: str) -> str:
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


def _extract(archive: Path, a: RemoteArchive, dest: Path, label: str, want: _Want | None,
             limits: tuple[int, int]) -> _Want:
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
    got: _Want = {}
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
                digest, n = _write_new(inp, dest / rel, limit + 1, f"{m.name} in {label}")
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


def _from_archive(obtain: Callable[[], Path], a: RemoteArchive, want: _Want | None,
                  limits: tuple[int, int], wait: float, drop: bool, dest: Path) -> _Want:
    """Obtain an archive and extract its folder into `dest`. `drop`: a cached unpinned copy
    that fails is deleted, so the next fetch downloads it again instead of failing forever."""
    path = obtain()
    opened = _signature(path)
    try:
        return _extract(path, a, dest, f"{a.name} ({path})", want, limits)
    except (IntegrityError, _Permanent) as e:
        if not drop:
            raise
        raise type(e)(f"{e}; {_drop_archive(path, opened, wait)}") from None


def _folder_error(folder: RemoteFolder, group: str, target: Path,
                  failures: list[tuple[str, str, str]], want: _Want | None) -> DownloadError:
    tried = "".join(f"\n  - {src}: {why}" for src, why, _ in failures)
    if want is not None:
        example = sorted(want)[0]
        what = (f"folder {group}/{folder.name} ({len(want)} files, "
                f"{sum(s for _, s in want.values())} bytes)")
        put = (f"Put its files at: {target}/ (e.g. {target}/{example}; checked against the "
               f"manifest)\nor set TASKZOO_MIRROR=<dir> with them in <dir>/{group}/ "
               f"(e.g. <dir>/{group}/{example})")
    else:
        what = f"folder {group}/{folder.name}"
        put = "Set TASKZOO_MIRROR=<dir>"
    if folder.archives:
        put += f" or its archive at <dir>/{group}/{folder.archives[0].name}"
    urls = [u for a in folder.archives for u in a.urls]
    if is_offline():
        hint = (f"unset TASKZOO_OFFLINE to download it from {urls[0]}" if urls else
                "unset TASKZOO_OFFLINE (no archive URL is known for it)")
        return OfflineError(f"{what} is not available offline (TASKZOO_OFFLINE is set).\n"
                            f"{put},\nor {hint}." + (f"\nSources tried:{tried}" if failures
                                                      else ""))
    if not failures:
        return DownloadError(f"could not fetch {what}: it has no archive URL and no mirror is "
                             f"set.\n{put}.")
    kinds = {k for _, _, k in failures}
    cls = IntegrityError if "integrity" in kinds and "error" not in kinds else DownloadError
    return cls(f"could not fetch {what}; tried:{tried}\nWithout network: {put[0].lower()}"
               f"{put[1:]}.")
