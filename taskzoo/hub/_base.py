"""The lowest layer of the download layer (`taskzoo.hub`), shared by every hub module.

The environment: `cache_root` (TASKZOO_HOME), `mirrors` (TASKZOO_MIRROR), `is_offline`
(TASKZOO_OFFLINE), `default_lock_timeout` (TASKZOO_LOCK_TIMEOUT). The HTTP transport: one
download of a URL into a `.part` file, resumed with Range and retried with backoff
(`get_retrying`, `_http_download`), and `read_url` for a small unpinned document. How a
source fails (`_Transient`, `Permanent`, `Absent`) and the read size `CHUNK`.
"""

from __future__ import annotations

import functools
import http.client
import importlib.metadata
import math
import os
import re
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from taskzoo.errors import DownloadError, IntegrityError, OfflineError, UsageError

CHUNK = 1 << 20
LOCK_TIMEOUT = 600.0  # seconds to wait for another process's lock; TASKZOO_LOCK_TIMEOUT overrides
_TRUTHY = {"1", "true", "yes", "on"}
URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Network failures worth retrying; OSErrors from the local disk are deliberately not here.
# ssl.SSLError is an OSError that urllib does not wrap when it comes from reading the
# response (status line, headers or body): a TLS record error is a network failure too.
_NET_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
               ssl.SSLError)

class Get(Protocol):
    """One HTTP download of `url` into `part`, with retries and resume. `limit`: the exact
    size expected (None: unknown); `cap`: the most bytes accepted when `limit` is None."""

    def __call__(self, url: str, part: Path, limit: int | None, desc: str, *,
                 cap: int | None = None) -> None: ...

class _Transient(Exception):
    """Worth retrying the same source after a backoff."""


class Permanent(Exception):
    """This source failed; move on to the next one."""


class Absent(Permanent):
    """The source lacks the file (404, no mirror copy, offline): not a real failure."""


def cache_root() -> Path:
    """Root of the download cache: $TASKZOO_HOME, else the platform cache dir.

    >>> cache_root()  # doctest: +SKIP
    PosixPath('/home/me/.cache/taskzoo')
    """
    if home := os.environ.get("TASKZOO_HOME"):
        return Path(home).expanduser()
    import platformdirs  # lazy: only needed when TASKZOO_HOME is unset

    return Path(platformdirs.user_cache_dir("taskzoo"))


def make_cache_dir(path: Path) -> Path:
    """`mkdir -p` a folder inside the cache; a UsageError naming the cache root (and
    TASKZOO_HOME when it is set) when the root or a folder on the way is a file.

    >>> make_cache_dir(cache_root() / "chat")  # doctest: +SKIP
    PosixPath('/home/me/.cache/taskzoo/chat')
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError) as e:
        # Otherwise the first download shows a traceback from deep inside pathlib.
        home = os.environ.get("TASKZOO_HOME")
        hint = (f"TASKZOO_HOME={home} must name a folder" if home else
                f"the cache root {cache_root()} must be a folder (TASKZOO_HOME sets another)")
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()),
                       Path(e.filename or path))
        raise UsageError(f"cannot make the cache folder {path}: {blocker} is a file, not a "
                         f"folder; {hint}") from None
    return path


def mirrors() -> list[str]:
    """Mirrors from $TASKZOO_MIRROR (comma/whitespace separated): absolute dirs or base URLs.

    >>> mirrors()  # TASKZOO_MIRROR="data/m, https://example.org/tz/"  # doctest: +SKIP
    ['/home/me/data/m', 'https://example.org/tz']
    """
    out = []
    for entry in re.split(r"[,\s]+", os.environ.get("TASKZOO_MIRROR", "").strip()):
        if entry:
            out.append(entry.rstrip("/") if URL_RE.match(entry)
                       else os.path.abspath(os.path.expanduser(entry)))
    return out


def is_offline() -> bool:
    """True when $TASKZOO_OFFLINE is 1/true/yes/on (any case).

    >>> is_offline()  # TASKZOO_OFFLINE=Yes  # doctest: +SKIP
    True
    """
    return os.environ.get("TASKZOO_OFFLINE", "").strip().lower() in _TRUTHY

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

def get_retrying(url: str, part: Path, limit: int | None, desc: str, *, retries: int,
                 backoff: float, timeout: float, show: bool, cap: int | None = None) -> None:
    """Download `url` into `part` (see `Get`), retrying a transient failure `retries` times
    after `backoff * 2**attempt` seconds; then `Permanent`."""
    for attempt in range(retries + 1):
        try:
            return _http_download(url, part, limit, desc, timeout=timeout, show=show, cap=cap)
        except _Transient as e:
            if attempt == retries:
                raise Permanent(f"{e} (gave up after {retries + 1} attempts)") from None
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
        raise (Absent if e.code in (404, 410) else Permanent)(f"HTTP {e.code} {e.reason}") \
            from None
    except _NET_ERRORS as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.gaierror):
            # No DNS answer will not change in a few seconds (offline machine): fail this source now.
            raise Permanent(f"cannot resolve host ({reason})") from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            # Nor will a certificate the system does not trust: move on to the next source.
            raise Permanent(f"TLS certificate not accepted ({reason})") from None
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

