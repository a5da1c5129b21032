"""Manifests, of `taskzoo.hub`: the (relative posix path, sha256, size) of every file of a
pinned folder; `build_manifest` from a local folder, `format_manifest` / `parse_manifest` as
text, `read_manifest` / `write_manifest` as (optionally gzip-compressed) files.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path

from taskzoo.errors import DataError
from taskzoo.files import open_regular, write_bytes, write_text
from taskzoo.hub._verify import sha256_file

ManifestEntry = tuple[str, str, int]  # (relative posix path, sha256 hex, size in bytes)
Manifest = tuple[ManifestEntry, ...]
_MANIFEST_HEADER = "# taskzoo manifest v1: <sha256> <size> <path>, one file per line, sorted"


def safe_rel(rel: object) -> bool:
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
            if not safe_rel(rel):
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
                or not parts[1].isdigit() or not safe_rel(parts[2])):
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
        with open_regular(path) as fh:  # a FIFO given by mistake must not block
            raw = fh.read()
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
