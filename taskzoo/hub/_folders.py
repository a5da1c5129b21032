"""Pinned folders, of `taskzoo.hub`: `RemoteFolder`, `cached_folder` and `fetch_folder`
with its sources (mirror folders, HTTP mirrors, archives), completion markers and errors.
The manifests that pin them are `_manifests`'s.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse
from urllib.request import url2pathname

from taskzoo.errors import DownloadError, IntegrityError, OfflineError
from taskzoo.files import write_json
from taskzoo.hub._archives import (
    RemoteArchive,
    Want,
    from_archive,
    is_archive,
    local_archive,
    not_cached,
    pinned_archive,
    sync_tree,
    unpinned_cap,
    write_new,
)
from taskzoo.hub._base import (
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
from taskzoo.hub._files import (
    cached_path,
    check_file,
    check_group,
    fetch_archive,
    from_local,
    from_url,
    locked,
    plain_name,
)
from taskzoo.hub._manifests import Manifest, safe_rel
from taskzoo.hub._verify import read_record, sha256_file, signature

# ---------------------------------------------------------------- pinned folders
# A folder is pinned by a manifest: (relative posix path, sha256, size) for every file. It is
# built in a temporary sibling `.<name>.tmp-*` (copied from a mirror folder or extracted from
# an archive), verified file by file while written, renamed into place in one step, and only
# then marked complete by `<name>.complete.json` beside it. The marker holds each file's
# sha256 and stat signature: the folder's verification record, so a later fetch stats the
# files instead of hashing them and rehashes only a file whose signature changed.

DEFAULT_MAX_BYTES = 64 << 30  # extracted bytes allowed from a pinned archive without manifest
DEFAULT_MAX_FILES = 1_000_000  # files allowed from a pinned archive without manifest

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


def _manifest_body(want: Want) -> str:
    return "".join(f"{want[rel][0]} {want[rel][1]} {rel}\n" for rel in sorted(want))


# ---------------------------------------------------------------- fetch_folder


def cached_folder(folder: RemoteFolder) -> Path:
    """Where the verified folder lives: `cache_root()/folders/<key[:16]>/<name>`, the key
    being the sha256 of its manifest (or of its pinned archives' hashes when it has none).

    >>> cached_folder(RemoteFolder("faces", (("a.pgm", "0" * 64, 1),))).parts[-3::2]
    ('folders', 'faces')
    """
    return cache_root() / "folders" / _folder_key(folder, _check_folder(folder))[:16] / folder.name


def _folder_key(folder: RemoteFolder, want: Want | None) -> str:
    if want is not None:
        text = _manifest_body(want)
    else:
        text = "archives\n" + "".join(sorted(f"{a.sha256.lower()}\n" for a in folder.archives))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_folder(folder: RemoteFolder) -> Want | None:
    """The manifest as a dict (None when there is none); ValueError for a malformed spec."""
    if not plain_name(folder.name):
        raise ValueError(f"RemoteFolder name must be a plain folder name, got {folder.name!r}")
    want: Want = {}
    for entry in folder.manifest:
        try:
            rel, sha, size = entry
        except (TypeError, ValueError):
            raise ValueError(f"RemoteFolder {folder.name!r}: manifest entries are "
                             f"(path, sha256, size), got {entry!r}") from None
        if not safe_rel(rel):
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
        if not plain_name(a.name):
            raise ValueError(f"RemoteArchive name must be a plain file name, got {a.name!r}")
        if a.sha256:
            check_file(a.remote(), "g")
        elif not want:
            raise ValueError(f"RemoteArchive {a.name!r} has no sha256: allowed only when the "
                             f"RemoteFolder {folder.name!r} has a manifest to verify it by")
        if a.root is None and not want:
            raise ValueError(f"RemoteArchive {a.name!r}: root=None (found from the manifest) "
                             f"needs a manifest")
        if a.root and not safe_rel(a.root.strip("/")):
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
    check_group(group)
    want = _check_folder(folder)
    key = _folder_key(folder, want)
    wait = default_lock_timeout() if lock_timeout is None else lock_timeout
    target = cache_root() / "folders" / key[:16] / folder.name
    # Fast path, no lock: the marker is written only after the folder is complete and in place.
    if _folder_ok(target, key, want):
        return target
    make_cache_dir(target.parent)
    show = progress if progress is not None else bool(sys.stderr and sys.stderr.isatty())
    get = functools.partial(get_retrying, retries=max(0, retries), backoff=backoff,
                            timeout=timeout, show=show)
    if want is not None:  # every byte written must be a listed file: nothing more is allowed
        limits = (sum(s for _, s in want.values()), len(want))
    else:
        limits = (DEFAULT_MAX_BYTES if max_bytes is None else max_bytes,
                  DEFAULT_MAX_FILES if max_files is None else max_files)
    failures: list[tuple[str, str, str]] = []
    with locked(target, wait, f"folder {group}/{folder.name}"):
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
                discard(target)
            else:
                mark(target, key, entries, f"found in place at {target}")
                return target
        for label, source in _folder_sources(folder, group, want, get, wait, limits):
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
            tmp.mkdir()
            try:
                entries = source(tmp)
            except (IntegrityError, Permanent) as e:
                shutil.rmtree(tmp, ignore_errors=True)
                kind = ("integrity" if isinstance(e, IntegrityError)
                        else "absent" if isinstance(e, Absent) else "error")
                failures.append((label, str(e), kind))
                continue
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            sync_tree(tmp)
            os.rename(tmp, target)  # atomic: the folder appears whole or not at all
            mark(target, key, entries, label)
            return target
    raise _folder_error(folder, group, target, failures, want)


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".complete.json")


def mark(target: Path, key: str, entries: Want, source: str) -> None:
    """Write the completion marker, last: each file's sha256 and stat signature."""
    files: dict[str, list[object]] = {}
    for rel, (sha, size) in sorted(entries.items()):
        sig = signature(target / rel)
        if sig is None or sig[0] != size:  # changed under our feet: leave it unmarked
            return
        files[rel] = [sha, *sig]
    write_json(_marker(target), {"format": 1, "key": key, "name": target.name,
                                 "source": source, "files": files})


def _folder_ok(target: Path, key: str, want: Want | None) -> bool:
    """Is the cached folder complete and unchanged? Stats every file; hashes only those
    whose signature changed since the marker was written (and updates the marker)."""
    marker = _marker(target)
    try:
        rec = read_record(marker)
        files = rec["files"]
        if rec.get("key") != key or not isinstance(files, dict) or not files:
            return False
        if want is not None and (files.keys() != want.keys() or any(
                (files[r][0], files[r][1]) != want[r] for r in want)):
            return False
        changed = False
        for rel, (sha, size, *sig) in files.items():
            if not safe_rel(rel):
                return False
            now = signature(target / rel)
            if now is None or now[0] != size:
                return False
            if list(now) != [size, *sig]:  # touched, copied or restored: same bytes still?
                if sha256_file(target / rel) != sha or signature(target / rel) != now:
                    return False
                files[rel] = [sha, *now]
                changed = True
    except (OSError, ValueError, KeyError, TypeError):  # no marker, or a damaged one
        return False
    if changed:
        with contextlib.suppress(OSError):
            write_json(marker, rec)
    return True


def _check_in_place(target: Path, want: Want) -> Want:
    """Hash every listed file of an unmarked folder; IntegrityError names the bad ones."""
    problems: list[str] = []
    for rel, (sha, size) in sorted(want.items()):
        path = target / rel
        sig = signature(path)
        if sig is None:
            problems.append(f"{path}: missing")
        elif sig[0] != size:
            problems.append(f"{path}: size {sig[0]} bytes, expected {size}")
        elif (digest := sha256_file(path)) != sha:
            problems.append(f"{path}: sha256 {digest}, expected {sha}")
    if problems:
        raise IntegrityError(_problems(f"{target} does not match the manifest", problems, want))
    return want


def _problems(head: str, problems: list[str], want: Want) -> str:
    shown = "".join(f"\n      {p}" for p in problems[:10])
    more = f"\n      ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    return f"{head} ({len(problems)} of {len(want)} files wrong):{shown}{more}"


def _clear_leftovers(target: Path) -> None:
    for p in target.parent.iterdir():
        if p.name.startswith((f".{target.name}.tmp-", f".{target.name}.old-")):
            shutil.rmtree(p, ignore_errors=True)


def discard(target: Path) -> None:
    """Remove a cached folder: marker first, then move it aside, so nothing that looks
    complete (or half-deleted) is ever left at `target`."""
    _marker(target).unlink(missing_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
        return
    aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.rename(target, aside)
    shutil.rmtree(aside, ignore_errors=True)


_FolderSource = Callable[[Path], Want]  # fills an empty folder, returns what it verified


def _folder_sources(folder: RemoteFolder, group: str, want: Want | None, get: Get,
                    wait: float, limits: tuple[int, int]) -> list[tuple[str, _FolderSource]]:
    out: list[tuple[str, _FolderSource]] = []
    cap = None if want is None else unpinned_cap(want)

    def archive(label: str, a: RemoteArchive, obtain: Callable[[], Path], drop: bool) -> None:
        out.append((label, functools.partial(from_archive, obtain, a, want, limits, wait, drop)))

    for a in folder.archives:  # a pinned archive fetched before costs no download
        if a.sha256 and os.path.exists(cached := cached_path(a.remote())):
            archive(f"cached archive {cached}", a,
                    functools.partial(pinned_archive, a, group, not_cached, wait), False)
    for m in mirrors():
        if URL_RE.match(m):
            base = f"{m}/{quote(group)}"
            if want is not None:
                out.append((f"mirror {base}/", functools.partial(_folder_from_urls, base, want,
                                                                  get)))
            for a in folder.archives:
                url = f"{base}/{quote(a.name)}"
                if a.sha256:
                    copy = functools.partial(from_url, url, a.remote(), get)
                    archive(f"mirror {url}", a,
                            functools.partial(pinned_archive, a, group, copy, wait), False)
                else:
                    archive(f"mirror {url}", a, functools.partial(
                        fetch_archive, url, get, wait, check=is_archive, kind="zip or tar",
                        cap=cap), True)
        else:
            d = Path(m) / group
            if want is not None:
                out.append((f"mirror {d}/", functools.partial(_folder_from_dir, d, want)))
            for a in folder.archives:
                if a.sha256:
                    copy = functools.partial(from_local, d / a.name, a.remote())
                    archive(f"mirror {d / a.name}", a,
                            functools.partial(pinned_archive, a, group, copy, wait), False)
                else:  # read where it is: not copied, and never deleted
                    archive(f"mirror {d / a.name}", a,
                            functools.partial(local_archive, d / a.name), False)
    for a in folder.archives:
        for u in a.urls:
            scheme = urlparse(u).scheme.lower()
            if a.sha256:
                copy = functools.partial(from_url, u, a.remote(), get)
                archive(u, a, functools.partial(pinned_archive, a, group, copy, wait), False)
            elif scheme == "file":
                archive(u, a, functools.partial(
                    local_archive, Path(url2pathname(urlparse(u).path))), False)
            else:
                archive(u, a, functools.partial(fetch_archive, u, get, wait, check=is_archive,
                                                kind="zip or tar", cap=cap), True)
    return out

def _folder_from_dir(src: Path, want: Want, dest: Path) -> Want:
    """Copy the listed files from a mirror folder, verifying each while it is copied."""
    if not src.is_dir():
        raise Absent(f"no folder {src}")
    missing = [rel for rel in sorted(want) if not (src / rel).is_file()]
    if len(missing) == len(want):
        raise Absent(f"{src} holds none of the folder's files")
    problems = [f"{src / rel}: missing" for rel in missing]
    for rel, (sha, size) in sorted(want.items()):
        path = src / rel
        if rel in missing:
            continue
        if (n := path.stat().st_size) != size:  # don't copy what cannot verify
            problems.append(f"{path}: size {n} bytes, expected {size}")
            continue
        with open(path, "rb") as inp:
            digest, n = write_new(inp, dest / rel, size + 1, str(path))
        if (digest, n) != (sha, size):
            problems.append(f"{path}: sha256 {digest}, expected {sha}")
    if problems:
        raise IntegrityError(_problems(f"mirror folder {src} does not match the manifest",
                                       problems, want))
    return want


def _folder_from_urls(base: str, want: Want, get: Get, dest: Path) -> Want:
    """Download the listed files one by one from `<base>/<path>` (an HTTP mirror)."""
    if is_offline():
        raise Absent("skipped: TASKZOO_OFFLINE is set")
    for i, rel in enumerate(sorted(want)):
        sha, size = want[rel]
        url = f"{base}/{quote(rel)}"
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            get(url, path, size, rel)
        except Absent:
            if i == 0:
                raise Absent(f"{base}/ does not serve the folder's files ({url}: "
                             f"not found)") from None
            raise Permanent(f"{url}: not found (the mirror holds only part of the "
                            f"folder)") from None
        if (digest := sha256_file(path)) != sha:
            raise IntegrityError(f"{url}: sha256 {digest}, expected {sha}; discarded")
    return want

def _folder_error(folder: RemoteFolder, group: str, target: Path,
                  failures: list[tuple[str, str, str]], want: Want | None) -> DownloadError:
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
