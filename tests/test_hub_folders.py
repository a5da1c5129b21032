"""taskzoo.hub: gunzip-pinned files, pinned folders (manifests, mirror folders, archives)
and safe extraction. Small data built in tmp_path; HTTP only on 127.0.0.1."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hub_server import count_hashes, replace_in_hub

from taskzoo import hub
from taskzoo.errors import DataError, DownloadError, IntegrityError, OfflineError
from taskzoo.hub import (
    RemoteArchive,
    RemoteFile,
    RemoteFolder,
    _archives,  # noqa: PLC2701 (hub internals are replaced where they are defined)
    _files,  # noqa: PLC2701
    _folders,  # noqa: PLC2701
    build_manifest,
    cached_folder,
    cached_path,
    fetch,
    fetch_folder,
)

pytestmark = pytest.mark.timeout(30)

FAST = {"backoff": 0.01, "progress": False}
TREE = {"README": b"a tiny dataset\n", "a/1.bin": random.Random(1).randbytes(5000),
        "a/2.bin": random.Random(2).randbytes(3000), "b/deeper/with space.txt": b"x" * 700}


def blob(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(tree: dict[str, bytes]) -> hub.Manifest:
    return tuple(sorted((rel, sha(data), len(data)) for rel, data in tree.items()))


def write_tree(root: Path, tree: dict[str, bytes]) -> Path:
    for rel, data in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def make_zip(tree: dict[str, bytes], prefix: str = "ds/") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in tree.items():
            zf.writestr(prefix + rel, data)
    return buf.getvalue()


def make_tar(tree: dict[str, bytes], prefix: str = "ds/", mode: str = "w:gz",
             extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for rel, data in tree.items():
            info = tarfile.TarInfo(prefix + rel)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info, io.BytesIO(b"\0" * info.size) if info.isreg() else None)
    return buf.getvalue()


def folder_of(tree: dict[str, bytes], *archives: RemoteArchive, name: str = "ds") -> RemoteFolder:
    return RemoteFolder(name, manifest(tree), tuple(archives))


def leftovers(folder: RemoteFolder) -> list[str]:
    parent = cached_folder(folder).parent
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name) \
        if parent.is_dir() else []


def assert_tree(path: Path, tree: dict[str, bytes]) -> None:
    assert {p.relative_to(path).as_posix(): p.read_bytes()
            for p in path.rglob("*") if p.is_file()} == tree


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        path = urlsplit(self.path).path
        rng = self.headers.get("Range")
        with srv.lock:  # type: ignore[attr-defined]
            srv.requests.append((path, rng))  # type: ignore[attr-defined]
            drop = srv.drop.pop(path, False)  # type: ignore[attr-defined]
        if path not in srv.files:  # type: ignore[attr-defined]
            return self.send_error(404)
        data = srv.files[path]  # type: ignore[attr-defined]
        start = int(rng[6:-1]) if rng and rng.startswith("bytes=") else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client refused it
            self.wfile.write(body[: len(body) // 2] if drop else body)  # drop: half, hang up
        self.close_connection = True


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.drop, httpd.requests = {}, {}, []  # type: ignore[attr-defined]
    httpd.lock = threading.Lock()  # type: ignore[attr-defined]
    httpd.url = lambda p: f"http://127.0.0.1:{httpd.server_address[1]}{p}"  # type: ignore
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    for var in ("TASKZOO_MIRROR", "TASKZOO_OFFLINE", "TASKZOO_LOCK_TIMEOUT", "http_proxy",
                "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------- gunzip-pinned files


def test_gunzip_file_from_dir_mirror_any_compression(monkeypatch, tmp_path):
    data = blob(200_000, seed=3)
    f = RemoteFile("t.idx.gz", sha(data), len(data), gunzip=True)
    for i, gz in enumerate([gzip.compress(data, 9, mtime=0), gzip.compress(data, 1, mtime=7)]):
        mirror = tmp_path / f"m{i}"
        write_tree(mirror, {"grp/t.idx.gz": gz})
        monkeypatch.setenv("TASKZOO_MIRROR", str(mirror))
        cached_path(f).unlink(missing_ok=True)
        path = fetch(f, group="grp", **FAST)
        assert path == cached_path(f) and path.name == "t.idx" and path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.idx", "t.idx.lock"]
    assert hub.describe([f]) == [{"name": "t.idx.gz", "sha256": f.sha256, "size": len(data),
                                  "gunzip": True}]

    # other content, or not gzip at all: rejected by the decompressed pin, nothing kept
    other = blob(200_000, seed=10)
    g = RemoteFile("u.idx.gz", sha(other), len(other), gunzip=True)
    write_tree(tmp_path / "bad", {"grp/u.idx.gz": gzip.compress(blob(200_000, seed=4))})
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "bad"))
    with pytest.raises(IntegrityError, match=r"u\.idx\.gz \(decompressed\) from .*sha256"):
        fetch(g, group="grp", **FAST)
    write_tree(tmp_path / "bad", {"grp/u.idx.gz": other})
    with pytest.raises(IntegrityError, match="not a valid gzip file"):
        fetch(g, group="grp", **FAST)
    assert not cached_path(g).exists() and not list(cached_path(g).parent.glob("*.part"))
    with pytest.raises(ValueError, match="ending in '.gz'"):
        fetch(RemoteFile("plain.idx", sha(data), 1, gunzip=True), group="grp")


def test_gunzip_file_from_loopback_http_resumes(server):
    data = blob(400_000, seed=5)
    gz = gzip.compress(data, 6)
    server.files["/d/t.gz"] = gz
    server.drop["/d/t.gz"] = True
    f = RemoteFile("t.gz", sha(data), len(data), (server.url("/d/t.gz"),), gunzip=True)
    path = fetch(f, group="g", **FAST)
    assert path.name == "t" and path.read_bytes() == data
    # the compressed download resumed where the dropped connection stopped
    assert [r for _, r in server.requests] == [None, f"bytes={len(gz) // 2}-"]
    assert not list(path.parent.glob("*.part"))
    assert fetch(f, group="g", **FAST) == path and len(server.requests) == 2  # cached


def test_gzip_bomb_and_oversize_stream_rejected(monkeypatch, tmp_path, server):
    bomb = gzip.compress(b"\0" * (32 << 20), 9)  # 32 MiB of zeros in about 32 KiB
    f = RemoteFile("bomb.gz", sha(b"\0" * 1000), 1000, gunzip=True)
    write_tree(tmp_path / "m", {"g/bomb.gz": bomb})
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "m"))
    written: list[int] = []
    real = _files.copy_stream

    def recording(inp, part, limit=None):
        real(inp, part, limit)
        written.append(part.stat().st_size)

    monkeypatch.setattr(_files, "copy_stream", recording)
    with pytest.raises(IntegrityError, match="decompresses to more than 1000 bytes"):
        fetch(f, group="g", **FAST)
    assert written == [1001]  # inflated one byte past the pin, then stopped
    assert not cached_path(f).exists() and not list(cached_path(f).parent.glob("*.part"))

    # over HTTP the compressed stream is capped too: a body far larger than any gzip of
    # 1000 bytes could be is cut off, not stored
    monkeypatch.delenv("TASKZOO_MIRROR")
    server.files["/huge.gz"] = blob(3 << 20)
    g = RemoteFile("huge.gz", sha(b"\0" * 1000), 1000, (server.url("/huge.gz"),), gunzip=True)
    with pytest.raises(IntegrityError, match="more than the .* allowed"):
        fetch(g, group="g", **FAST)
    assert not cached_path(g).exists() and not list(cached_path(g).parent.glob("*.part"))


# ---------------------------------------------------------------- manifests


def test_manifest_build_write_read_roundtrip(tmp_path):
    root = write_tree(tmp_path / "ds", TREE)
    (root / "empty").mkdir()
    m = build_manifest(root)
    assert m == manifest(TREE)
    hub.write_manifest(tmp_path / "ds.txt", m, comment="four files\nsecond line")
    text = (tmp_path / "ds.txt").read_text()
    assert text.splitlines()[1:3] == ["# four files", "# second line"]
    assert f"{sha(TREE['b/deeper/with space.txt'])} 700 b/deeper/with space.txt" in text
    assert hub.read_manifest(tmp_path / "ds.txt") == m
    good = "0" * 64
    for bad, why in [(f"{good} 3\n", ":1:"), (f"# c\n{good} x a\n", ":2:"),
                     (f"{good} 3 ../up\n", "relative path"), (f"{good} 3 /abs\n", ":1:"),
                     (f"{good} 1 a\n{good} 1 a\n", "listed twice"), ("zz 1 a\n", ":1:")]:
        with pytest.raises(DataError, match=why):
            hub.parse_manifest(bad)
    with pytest.raises(DataError, match="not a folder"):
        build_manifest(tmp_path / "nope")
    with pytest.raises(DataError, match="cannot read the manifest"):
        hub.read_manifest(tmp_path / "nope.txt")


def test_bad_folder_specs_rejected():
    m = manifest(TREE)
    bad = [RemoteFolder("../x", m), RemoteFolder("x", (("../a", "0" * 64, 1),)),
           RemoteFolder("x", (("a", "nothex", 1),)), RemoteFolder("x", (("a", "0" * 64, -1),)),
           RemoteFolder("x", (("a", "0" * 64, 1), ("a/b", "0" * 64, 1))),
           RemoteFolder("x", (), (RemoteArchive("x.zip"),)),  # unpinned and no manifest
           RemoteFolder("x", m, (RemoteArchive("x.zip", root="../up"),))]
    for folder in bad:
        with pytest.raises(ValueError):
            fetch_folder(folder, group="g")
    with pytest.raises(ValueError, match="group"):
        fetch_folder(RemoteFolder("x", m), group="../g")


# ---------------------------------------------------------------- folders from mirrors


def test_folder_from_mirror_folder_then_cache(monkeypatch, tmp_path):
    write_tree(tmp_path / "m" / "grp", TREE)
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "m"))
    folder = folder_of(TREE)
    path = fetch_folder(folder, group="grp", **FAST)
    assert path == cached_folder(folder) and path.parts[-3] == "folders"
    assert_tree(path, TREE)
    assert path.with_name("ds.complete.json").is_file() and not leftovers(folder)

    hashed = count_hashes(monkeypatch)
    monkeypatch.delenv("TASKZOO_MIRROR")
    assert fetch_folder(folder, group="grp", **FAST) == path and hashed == []  # stat only
    st = (path / "a/1.bin").stat()
    os.utime(path / "a/1.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    assert fetch_folder(folder, group="grp", **FAST) == path
    assert hashed == [path / "a/1.bin"]  # exactly the changed file, once
    assert fetch_folder(folder, group="grp", **FAST) == path and len(hashed) == 1

    # damaged in the cache (same size, new bytes): rebuilt from the mirror
    (path / "a/2.bin").write_bytes(blob(3000, seed=99))
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "m"))
    assert fetch_folder(folder, group="grp", **FAST) == path
    assert_tree(path, TREE) and not leftovers(folder)


def test_wrong_file_in_mirror_folder_is_named(monkeypatch, tmp_path):
    bad = write_tree(tmp_path / "bad" / "grp", {**TREE, "a/2.bin": blob(3000, seed=7)})
    (bad / "README").unlink()
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "bad"))
    folder = folder_of(TREE)
    with pytest.raises(IntegrityError) as e:
        fetch_folder(folder, group="grp", **FAST)
    msg = str(e.value)
    assert f"{bad / 'a/2.bin'}: sha256 {sha(blob(3000, seed=7))}" in msg
    assert f"{bad / 'README'}: missing" in msg and "2 of 4 files wrong" in msg
    assert not cached_folder(folder).exists() and not leftovers(folder)
    # a good second mirror is used after the bad one
    write_tree(tmp_path / "good" / "grp", TREE)
    monkeypatch.setenv("TASKZOO_MIRROR", f"{tmp_path / 'bad'},{tmp_path / 'good'}")
    assert_tree(fetch_folder(folder, group="grp", **FAST), TREE)


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar.bz2", "tar.xz"])
def test_folder_from_mirror_archive(monkeypatch, tmp_path, kind):
    blob_ = make_zip(TREE) if kind == "zip" else make_tar(TREE, mode=f"w:{kind[4:]}")
    name = f"ds.{kind}"
    write_tree(tmp_path / "m" / "grp", {name: blob_})  # the archive only, no files
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "m"))
    root = None if kind == "tar.bz2" else "ds"  # None: found from the manifest
    pinned = kind == "tar.xz"
    archive = RemoteArchive(name, sha(blob_) if pinned else "", len(blob_) if pinned else 0,
                            root=root)
    folder = folder_of(TREE, archive)
    path = fetch_folder(folder, group="grp", **FAST)
    assert_tree(path, TREE)
    assert not leftovers(folder)
    assert (tmp_path / "m" / "grp" / name).is_file()  # a mirror's archive is never deleted
    if pinned:  # verified and kept in the content cache
        assert cached_path(archive.remote()).read_bytes() == blob_


def test_folder_from_loopback_url_archive(monkeypatch, server):
    server.files["/pub/ds.zip"] = make_zip(TREE, prefix="")
    folder = folder_of(TREE, RemoteArchive("ds.zip", urls=(server.url("/pub/ds.zip"),)))
    path = fetch_folder(folder, group="grp", **FAST)
    assert_tree(path, TREE) and len(server.requests) == 1
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    assert fetch_folder(folder, group="grp", **FAST) == path and len(server.requests) == 1


def test_folder_from_http_mirror_files(monkeypatch, server):
    for rel, data in TREE.items():
        server.files[f"/mirror/grp/{rel.replace(' ', '%20')}"] = data
    monkeypatch.setenv("TASKZOO_MIRROR", server.url("/mirror"))
    folder = folder_of(TREE)
    assert_tree(fetch_folder(folder, group="grp", **FAST), TREE)
    assert len(server.requests) == len(TREE)


def test_unpinned_url_archive_failing_the_manifest_is_dropped(server):
    server.files["/ds.zip"] = make_zip({**TREE, "a/1.bin": blob(5000, seed=8)})
    folder = folder_of(TREE, RemoteArchive("ds.zip", urls=(server.url("/ds.zip"),), root="ds"))
    with pytest.raises(IntegrityError, match=r"a/1\.bin in ds\.zip .*deleted the cached archive"):
        fetch_folder(folder, group="grp", **FAST)
    server.files["/ds.zip"] = make_zip(TREE)
    assert_tree(fetch_folder(folder, group="grp", **FAST), TREE)
    assert len(server.requests) == 2  # downloaded again, not served the stale copy


def test_pinned_archive_without_manifest_and_its_limits(monkeypatch, tmp_path):
    data = make_tar(TREE, prefix="top/")
    write_tree(tmp_path / "m" / "grp", {"ds.tar.gz": data})
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "m"))
    folder = RemoteFolder("ds", (), (RemoteArchive("ds.tar.gz", sha(data), len(data),
                                                   root="top"),))
    with pytest.raises(IntegrityError, match="more than 3 files"):
        fetch_folder(folder, group="grp", max_files=3, **FAST)
    with pytest.raises(IntegrityError, match="more than 8000 bytes extracted"):
        fetch_folder(folder, group="grp", max_bytes=8000, **FAST)
    assert not cached_folder(folder).exists() and not leftovers(folder)
    path = fetch_folder(folder, group="grp", **FAST)
    assert_tree(path, TREE)
    hashed = count_hashes(monkeypatch)
    assert fetch_folder(folder, group="grp", **FAST) == path and hashed == []


# ---------------------------------------------------------------- unsafe archives


def tar_entry(name: str, kind: bytes, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


def zip_with(name: str, data: bytes = b"x", mode: int | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, d in TREE.items():
            zf.writestr("ds/" + rel, d)
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)
    return buf.getvalue()


# each builder takes tmp_path: the absolute-path member points into it, not at the machine
UNSAFE = {
    "absolute path (tar)": ("tar.gz", lambda t: make_tar(TREE, extra=[
        tar_entry(str(t / "abs_evil"), tarfile.REGTYPE, 3)]), "absolute path"),
    "absolute path (zip)": ("zip", lambda t: zip_with("/ds/evil"), "absolute path"),
    "dotdot (zip)": ("zip", lambda t: zip_with("ds/../../evil"), r"outside the folder \('\.\.'\)"),
    "dotdot (tar)": ("tar.gz", lambda t: make_tar(TREE, extra=[
        tar_entry("ds/../evil", tarfile.REGTYPE, 3)]), r"'\.\.'"),
    "symlink out (tar)": ("tar.gz", lambda t: make_tar(TREE, extra=[
        tar_entry("ds/link", tarfile.SYMTYPE, link="../../../outside")]), "symbolic link"),
    "hardlink (tar)": ("tar.gz", lambda t: make_tar(TREE, extra=[
        tar_entry("ds/hard", tarfile.LNKTYPE, link=str(t / "outside"))]), "hard link"),
    "symlink (zip)": ("zip", lambda t: zip_with("ds/link", b"../../outside", 0o120777),
                      "symbolic link"),
    "device (tar)": ("tar.gz", lambda t: make_tar(TREE, extra=[
        tar_entry("ds/dev", tarfile.CHRTYPE)]), "device"),
    "too many bytes (zip)": ("zip", lambda t: make_zip({**TREE, "a/2.bin": b"\0" * (8 << 20)}),
                             r"'ds/a/2\.bin' is larger than its pinned 3000 bytes"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_refused(monkeypatch, tmp_path, case):
    kind, build, why = UNSAFE[case]
    write_tree(tmp_path / "m" / "grp", {f"ds.{kind}": build(tmp_path)})
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "m"))
    folder = folder_of(TREE, RemoteArchive(f"ds.{kind}", root="ds"))
    with pytest.raises(IntegrityError, match=why) as e:
        fetch_folder(folder, group="grp", **FAST)
    if "too many" not in case:
        assert "unsafe archive, refused" in str(e.value)
    assert not cached_folder(folder).exists() and not leftovers(folder)
    assert not (tmp_path / "outside").exists() and not (tmp_path / "abs_evil").exists()
    assert not list((tmp_path / "home").rglob("evil"))


# ---------------------------------------------------------------- interruptions and locks


class Boom(Exception):
    pass


def test_interrupted_extraction_leaves_nothing_complete(monkeypatch, tmp_path):
    write_tree(tmp_path / "m" / "grp", {"ds.zip": make_zip(TREE)})
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "m"))
    folder = folder_of(TREE, RemoteArchive("ds.zip", root="ds"))
    real, calls = _archives.write_new, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Boom("disk pulled out")
        return real(*args, **kwargs)

    replace_in_hub(monkeypatch, "write_new", failing)
    with pytest.raises(Boom):
        fetch_folder(folder, group="grp", **FAST)
    target = cached_folder(folder)
    assert not target.exists() and not target.with_name("ds.complete.json").exists()
    assert not leftovers(folder)
    replace_in_hub(monkeypatch, "write_new", real)
    assert_tree(fetch_folder(folder, group="grp", **FAST), TREE)

    # a crash after the rename but before the marker: verified in place (hashed) and marked
    _folders.discard(target)
    real_mark = _folders.mark
    monkeypatch.setattr(_folders, "mark", lambda *a: (_ for _ in ()).throw(Boom("killed")))
    with pytest.raises(Boom):
        fetch_folder(folder, group="grp", **FAST)
    assert target.is_dir() and not target.with_name("ds.complete.json").exists()
    monkeypatch.setattr(_folders, "mark", real_mark)
    monkeypatch.delenv("TASKZOO_MIRROR")
    hashed = count_hashes(monkeypatch)
    assert fetch_folder(folder, group="grp", **FAST) == target  # no mirror needed
    assert len(hashed) == len(TREE) and target.with_name("ds.complete.json").is_file()


def test_killed_extraction_is_cleaned_up_next_time(monkeypatch, tmp_path):
    write_tree(tmp_path / "m" / "grp", {"ds.tar.gz": make_tar(TREE)})
    hub.write_manifest(tmp_path / "ds.txt", manifest(TREE))
    env = {**os.environ, "TASKZOO_MIRROR": str(tmp_path / "m")}
    code = ("import os, signal, sys\n"
            "from taskzoo import hub\n"
            "from taskzoo.hub import _archives, _folders\n"
            "real, calls = _archives.write_new, []\n"
            "def dying(*a, **k):\n"
            "    calls.append(1)\n"
            "    if len(calls) == 3:\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return real(*a, **k)\n"
            "_archives.write_new = _folders.write_new = dying\n"
            "folder = hub.RemoteFolder('ds', hub.read_manifest(sys.argv[1]),\n"
            "                          (hub.RemoteArchive('ds.tar.gz', root='ds'),))\n"
            "hub.fetch_folder(folder, group='grp', progress=False)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ds.txt")], env=env,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    folder = folder_of(TREE, RemoteArchive("ds.tar.gz", root="ds"))
    target = cached_folder(folder)
    assert not target.exists() and not target.with_name("ds.complete.json").exists()
    stale = leftovers(folder)
    assert len(stale) == 1 and stale[0].startswith(".ds.tmp-")  # what the kill left behind
    monkeypatch.setenv("TASKZOO_MIRROR", env["TASKZOO_MIRROR"])
    assert_tree(fetch_folder(folder, group="grp", **FAST), TREE)
    assert not leftovers(folder)


def test_folder_lock_held_elsewhere_times_out(tmp_path):
    folder = folder_of(TREE)
    lock = Path(f"{cached_folder(folder)}.lock")
    lock.parent.mkdir(parents=True)
    code = ("import sys, time, filelock\n"
            "lock = filelock.FileLock(sys.argv[1]); lock.acquire()\n"
            "print('held', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(DownloadError, match=f"lock {lock} on folder grp/ds"):
            fetch_folder(folder, group="grp", lock_timeout=0.3, **FAST)
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


# ---------------------------------------------------------------- errors


def test_offline_error_names_the_folder_and_where_to_put_it(monkeypatch, server):
    server.files["/ds.zip"] = make_zip(TREE)
    url = server.url("/ds.zip")
    folder = folder_of(TREE, RemoteArchive("ds.zip", urls=(url,), root="ds"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as e:
        fetch_folder(folder, group="grp", **FAST)
    msg = str(e.value)
    target = cached_folder(folder)
    for part in ("folder grp/ds (4 files, 8715 bytes)", "not available offline",
                 f"Put its files at: {target}/", f"{target}/README",
                 "TASKZOO_MIRROR=<dir> with them in <dir>/grp/", "<dir>/grp/ds.zip",
                 f"unset TASKZOO_OFFLINE to download it from {url}"):
        assert part in msg, part
    assert server.requests == []
    # files put by hand where the message says are checked against the manifest and used
    write_tree(target, TREE)
    assert fetch_folder(folder, group="grp", **FAST) == target
    monkeypatch.delenv("TASKZOO_OFFLINE")
    with pytest.raises(DownloadError, match="no archive URL and no mirror"):
        fetch_folder(folder_of({"x": b"1"}), group="grp", **FAST)
