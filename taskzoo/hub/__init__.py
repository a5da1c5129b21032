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

The code lives in these modules, lowest first: `hub_base` (environment, HTTP transport),
`hub_verify` (`sha256_file`, verification records), `hub_files` (single files: `fetch`,
`verify_cache`), `hub_archives` (`RemoteArchive`, safe extraction), `hub_manifests`
(manifests) and `hub_folders` (`RemoteFolder`, `fetch_folder`). This module re-exports what callers use, so `from taskzoo.hub import X`
and `hub.X` work as they always did.
"""

from __future__ import annotations

from taskzoo import errors as _errors
from taskzoo.hub import _archives, _base, _files, _folders, _manifests
from taskzoo.hub._archives import RemoteArchive
from taskzoo.hub._base import cache_root, default_lock_timeout, is_offline, mirrors
from taskzoo.hub._files import ArchiveMember, RemoteFile, cached_path, fetch
from taskzoo.hub._folders import RemoteFolder, cached_folder, fetch_folder
from taskzoo.hub._manifests import (
                                   Manifest,
                                   build_manifest,
                                   format_manifest,
                                   parse_manifest,
                                   read_manifest,
                                   write_manifest,
)
from taskzoo.hub._verify import sha256_file, verified_file

__all__ = ["ArchiveMember", "RemoteFile", "RemoteArchive", "RemoteFolder", "Manifest",
           "cache_root", "mirrors", "is_offline", "cached_path", "cached_folder", "fetch",
           "fetch_folder", "build_manifest", "format_manifest", "parse_manifest",
           "read_manifest", "write_manifest", "sha256_file", "verified_file",
           "default_lock_timeout"]

# Also part of `hub.X`, outside __all__ as before: helpers callers use, the constants, and
# the errors callers catch as `hub.DownloadError`.
describe = _files.describe
read_url = _base.read_url
verify_cache = _files.verify_cache
CHUNK = _base.CHUNK
LOCK_TIMEOUT = _base.LOCK_TIMEOUT
DEFAULT_MAX_BYTES = _folders.DEFAULT_MAX_BYTES
DEFAULT_MAX_FILES = _folders.DEFAULT_MAX_FILES
ManifestEntry = _manifests.ManifestEntry
DataError = _errors.DataError
DownloadError = _errors.DownloadError
IntegrityError = _errors.IntegrityError
OfflineError = _errors.OfflineError
UsageError = _errors.UsageError

# Hooks tests replace with `monkeypatch.setattr(hub, name, ...)`. The hub_* modules call
# these four (and `sha256_file` above) through this module (`hub_base._facade()`), never
# directly, so a replacement made here takes effect in every module, as when hub was one
# file. `_discard` is re-exported because tests call it.
_copy_stream = _files._copy_stream
_write_new = _archives._write_new
_mark = _folders._mark
_discard = _folders._discard
