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

The code lives in these modules, lowest first: `_base` (environment, HTTP transport),
`_verify` (`sha256_file`, verification records), `_files` (single files: `fetch`,
`verify_cache`), `_archives` (`RemoteArchive`, safe extraction), `_manifests` (manifests)
and `_folders` (`RemoteFolder`, `fetch_folder`). This package exports what callers use:
`__all__`, plus `describe`, `read_url`, `verify_cache`, the constants and the errors.

Each private module imports the names it uses from the module that defines them, so a test
that replaces one (to count hashes, or to crash mid-extraction) replaces it in every module
that holds it (`tests/hub_server.py`, `replace_in_hub`).
"""

from __future__ import annotations

from taskzoo.errors import DataError as DataError
from taskzoo.errors import DownloadError as DownloadError
from taskzoo.errors import IntegrityError as IntegrityError
from taskzoo.errors import OfflineError as OfflineError
from taskzoo.errors import UsageError as UsageError
from taskzoo.hub._archives import RemoteArchive
from taskzoo.hub._base import CHUNK as CHUNK
from taskzoo.hub._base import LOCK_TIMEOUT as LOCK_TIMEOUT
from taskzoo.hub._base import cache_root, default_lock_timeout, is_offline, make_cache_dir, mirrors
from taskzoo.hub._base import read_url as read_url
from taskzoo.hub._files import ArchiveMember, RemoteFile, cached_path, fetch
from taskzoo.hub._files import describe as describe
from taskzoo.hub._files import verify_cache as verify_cache
from taskzoo.hub._folders import DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES
from taskzoo.hub._folders import DEFAULT_MAX_FILES as DEFAULT_MAX_FILES
from taskzoo.hub._folders import RemoteFolder, cached_folder, fetch_folder
from taskzoo.hub._manifests import (
    Manifest,
    build_manifest,
    format_manifest,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from taskzoo.hub._manifests import ManifestEntry as ManifestEntry
from taskzoo.hub._verify import sha256_file, verified_file

__all__ = ["ArchiveMember", "RemoteFile", "RemoteArchive", "RemoteFolder", "Manifest",
           "cache_root", "mirrors", "is_offline", "cached_path", "cached_folder", "fetch",
           "fetch_folder", "build_manifest", "format_manifest", "parse_manifest",
           "read_manifest", "write_manifest", "sha256_file", "verified_file",
           "default_lock_timeout", "make_cache_dir"]
