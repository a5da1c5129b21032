"""taskzoo.hub against a real HTTP server on 127.0.0.1 (no outside network)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hub_server import count_hashes, run_at_once

from taskzoo import hub
from taskzoo.errors import DownloadError, IntegrityError, OfflineError, UsageError
from taskzoo.hub import (
    ArchiveMember,
    RemoteFile,
    cached_path,
    fetch,
)

pytestmark = pytest.mark.timeout(30)

FAST = {"backoff": 0.01, "progress": False}


def blob(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def pin(name: str, data: bytes, *urls) -> RemoteFile:
    return RemoteFile(name, hashlib.sha256(data).hexdigest(), len(data), tuple(urls))


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    for var in ("TASKZOO_MIRROR", "TASKZOO_OFFLINE", "http_proxy", "HTTP_PROXY",
                "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def nothing_in_place(f: RemoteFile) -> bool:
    p = cached_path(f)
    return not p.exists() and not Path(f"{p}.part").exists()


# ---------------------------------------------------------------- env helpers


def test_env_helpers(monkeypatch, tmp_path):
    assert hub.cache_root() == tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKZOO_MIRROR", "rel/dir, https://m.example/tz/\n file:///x  /abs")
    assert hub.mirrors() == [str(tmp_path / "rel/dir"), "https://m.example/tz", "file:///x",
                             "/abs"]
    for v, want in [("1", True), ("TRUE", True), ("on", True), ("yes", True), ("0", False),
                    ("", False)]:
        monkeypatch.setenv("TASKZOO_OFFLINE", v)
        assert hub.is_offline() is want
    f = pin("a.txt", b"abc")
    assert cached_path(f) == tmp_path / "home" / f.sha256[:16] / "a.txt"


# ---------------------------------------------------------------- HTTP


def test_good_file_then_cache(server):
    data = blob(300_000)
    server.files["/d/train.tsv"] = data
    f = pin("train.tsv", data, server.url("/d/train.tsv"))
    path = fetch(f, group="g", backoff=0.01, progress=True)  # exercise the bar too
    assert path == cached_path(f) and path.read_bytes() == data
    assert hub.sha256_file(path) == f.sha256
    assert server.count() == 1
    assert fetch(f, group="g", **FAST) == path
    assert server.count() == 1  # served from cache
    assert not list(path.parent.glob("*.part"))


def test_wrong_hash(server):
    data = blob(50_000)
    server.files["/f.bin"] = data
    server.faults["/f.bin"] = {"wrong": True}
    f = pin("f.bin", data, server.url("/f.bin"))
    with pytest.raises(IntegrityError) as e:
        fetch(f, group="g", **FAST)
    msg = str(e.value)
    assert "f.bin" in msg and f.sha256 in msg and server.url("/f.bin") in msg
    assert hashlib.sha256(bytes(b ^ 0xFF for b in data)).hexdigest() in msg
    assert nothing_in_place(f)


def test_truncated_body(server):
    data = blob(40_000)
    server.files["/t.bin"] = data
    server.faults["/t.bin"] = {"short": True}
    f = pin("t.bin", data, server.url("/t.bin"))
    with pytest.raises(DownloadError) as e:
        fetch(f, group="g", retries=2, **FAST)
    assert "truncated" in str(e.value)
    assert server.count() == 3  # truncation is retried
    assert not cached_path(f).exists()


def test_server_error_retried(server):
    data = blob(10_000)
    server.files["/e.bin"] = data
    server.faults["/e.bin"] = {"fail": 2}
    f = pin("e.bin", data, server.url("/e.bin"))
    assert fetch(f, group="g", retries=3, **FAST).read_bytes() == data
    assert server.count("/e.bin") == 3


def test_server_error_gives_up(server):
    server.files["/e.bin"] = data = blob(1000)
    server.faults["/e.bin"] = {"fail": 100}
    f = pin("e.bin", data, server.url("/e.bin"))
    with pytest.raises(DownloadError) as e:
        fetch(f, group="g", retries=2, **FAST)
    assert not isinstance(e.value, IntegrityError) and "HTTP 500" in str(e.value)
    assert server.count() == 3 and nothing_in_place(f)


def test_dropped_connection_resumes_with_range(server):
    data = blob(1 << 20, seed=3)
    server.files["/big.bin"] = data
    server.faults["/big.bin"] = {"drop": 1}
    f = pin("big.bin", data, server.url("/big.bin"))
    assert fetch(f, group="g", **FAST).read_bytes() == data
    assert [r for _, r in server.requests] == [None, f"bytes={len(data) // 2}-"]


def test_stale_part_is_redone_from_zero(server):
    data = blob(100_000, seed=5)
    server.files["/r.bin"] = data
    f = pin("r.bin", data, server.url("/r.bin"))
    part = Path(f"{cached_path(f)}.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage" * 100)  # a prefix that is not the file's
    assert fetch(f, group="g", **FAST).read_bytes() == data
    assert [r for _, r in server.requests] == ["bytes=700-", None]
    assert not part.exists()


def test_oversized_body_rejected(server):
    data = blob(10_000)
    server.files["/big"] = data + b"extra"
    f = pin("big", data, server.url("/big"))
    with pytest.raises(IntegrityError, match="10005 bytes"):
        fetch(f, group="g", **FAST)
    assert server.count() == 1 and nothing_in_place(f)


def test_404_moves_on_without_retry(server):
    data = blob(2000)
    server.files["/ok.bin"] = data
    f = pin("ok.bin", data, server.url("/missing.bin"), server.url("/ok.bin"))
    assert fetch(f, group="g", retries=3, **FAST).read_bytes() == data
    assert server.count("/missing.bin") == 1 and server.count("/ok.bin") == 1


def test_all_sources_fail_lists_each(server):
    f = pin("x.bin", b"x", server.url("/a"), server.url("/b"))
    with pytest.raises(DownloadError) as e:
        fetch(f, group="g", **FAST)
    msg = str(e.value)
    assert server.url("/a") in msg and server.url("/b") in msg and msg.count("HTTP 404") == 2


@pytest.mark.parametrize("stage", ["read", "connect", "certificate"])
def test_tls_error_moves_on_to_the_next_source(server, monkeypatch, stage):
    """A TLS failure is a network failure of that source: retried (unless the certificate
    is refused), then the next source is tried; never a raw ssl.SSLError."""
    data = blob(300_000, seed=11)
    server.files["/tls.bin"] = server.files["/ok.bin"] = data
    real_urlopen, attempts = urllib.request.urlopen, []

    def urlopen(req, *args, **kwargs):
        if urlsplit(req.full_url).path != "/tls.bin":
            return real_urlopen(req, *args, **kwargs)
        attempts.append(req.get_header("Range"))
        if stage == "certificate":  # what urllib raises for an untrusted certificate
            raise urllib.error.URLError(ssl.SSLCertVerificationError(1, "self-signed certificate"))
        if stage == "connect":  # http.client reads the status line outside urllib's wrapping
            raise ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
        resp = real_urlopen(req, *args, **kwargs)
        read = resp.read

        def broken_read(n=-1):  # some bytes arrive, then the TLS record layer fails
            if getattr(resp, "_broke", False):
                raise ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] bad record mac")
            resp._broke = True
            return read(1000)

        resp.read = broken_read
        return resp

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    f = pin("tls.bin", data, server.url("/tls.bin"), server.url("/ok.bin"))
    assert fetch(f, group="g", retries=1, **FAST).read_bytes() == data
    assert len(attempts) == (1 if stage == "certificate" else 2)  # transient: retried once
    if stage == "read":
        assert attempts == [None, "bytes=1000-"]  # the bytes that did arrive are kept
    assert server.count("/ok.bin") == 1

    alone = pin("tls.bin", data, server.url("/tls.bin"))
    cached_path(alone).unlink()
    with pytest.raises(DownloadError) as e:
        fetch(alone, group="g", retries=1, **FAST)
    assert not isinstance(e.value, (ssl.SSLError, IntegrityError))
    msg = str(e.value)
    assert server.url("/tls.bin") in msg
    assert ("certificate not accepted" if stage == "certificate" else "TLS error") in msg
    assert not cached_path(alone).exists()  # (a .part of what arrived is kept for resuming)


def test_wrong_size_cache_is_replaced_and_same_hash_is_linked(server):
    data = blob(5000)
    server.files["/s.bin"] = data
    f = pin("s.bin", data, server.url("/s.bin"))
    cached_path(f).parent.mkdir(parents=True)
    cached_path(f).write_bytes(b"stale")
    assert fetch(f, group="g", **FAST).read_bytes() == data
    twin = pin("twin.bin", data)  # no URL at all: must come from the cache by hash
    p = fetch(twin, group="g", **FAST)
    assert p.name == "twin.bin" and p.read_bytes() == data and server.count() == 1


def _worker(f: RemoteFile, barrier, queue) -> None:
    barrier.wait()
    queue.put(str(fetch(f, group="g", backoff=0.01, progress=False)))


def test_two_processes_one_download(server):
    data = blob(200_000, seed=7)
    server.files["/p.bin"] = data
    server.faults["/p.bin"] = {"delay": 1.0}
    f = pin("p.bin", data, server.url("/p.bin"))
    paths = run_at_once(_worker, (f,), n=2, timeout=25)
    assert paths[0] == paths[1] == str(cached_path(f))
    assert cached_path(f).read_bytes() == data
    assert server.count("/p.bin") == 1 and server.full_bodies["/p.bin"] == 1


# ---------------------------------------------------------------- offline and mirrors


def test_offline(server, monkeypatch, tmp_path):
    data = blob(3000)
    server.files["/o.bin"] = data
    f = pin("o.bin", data, server.url("/o.bin"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as e:
        fetch(f, group="grp", **FAST)
    msg = str(e.value)
    for part in ("grp/o.bin", str(cached_path(f)), f.sha256, "TASKZOO_MIRROR",
                 server.url("/o.bin"), "3000"):
        assert part in msg
    assert server.count() == 0
    (tmp_path / "m" / "grp").mkdir(parents=True)
    (tmp_path / "m" / "grp" / "o.bin").write_bytes(data)
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "m"))
    assert fetch(f, group="grp", **FAST).read_bytes() == data
    assert server.count() == 0


def test_directory_mirror_first_and_corrupt_mirror_falls_through(server, monkeypatch, tmp_path):
    data = blob(8000)
    server.files["/u.bin"] = data
    f = pin("u.bin", data, server.url("/u.bin"))
    good, bad = tmp_path / "good", tmp_path / "bad"
    (good / "grp").mkdir(parents=True)
    (good / "grp" / "u.bin").write_bytes(data)
    monkeypatch.setenv("TASKZOO_MIRROR", str(good))
    assert fetch(f, group="grp", **FAST).read_bytes() == data
    assert server.count() == 0

    f2 = pin("v.bin", blob(8000, seed=1), server.url("/v.bin"))
    server.files["/v.bin"] = blob(8000, seed=1)
    (bad / "grp").mkdir(parents=True)
    (bad / "grp" / "v.bin").write_bytes(blob(8000, seed=2))  # same size, wrong bytes
    monkeypatch.setenv("TASKZOO_MIRROR", f"{bad},{good}")
    assert fetch(f2, group="grp", **FAST).read_bytes() == blob(8000, seed=1)
    assert server.count("/v.bin") == 1


def test_http_mirror(server, monkeypatch):
    data = blob(6000)
    server.files["/mirror/grp/w.bin"] = data
    f = pin("w.bin", data, server.url("/canonical/w.bin"))
    monkeypatch.setenv("TASKZOO_MIRROR", server.url("/mirror/"))
    assert fetch(f, group="grp", **FAST).read_bytes() == data
    assert server.count("/mirror/grp/w.bin") == 1 and server.count("/canonical/w.bin") == 0


def test_file_url(tmp_path):
    src = tmp_path / "local.bin"
    src.write_bytes(data := blob(1234))
    f = pin("local.bin", data, src.as_uri())
    assert fetch(f, group="g", **FAST).read_bytes() == data


# ---------------------------------------------------------------- archives


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_archive_member(server, monkeypatch):
    train, dev = b"sentence\tlabel\n" + blob(20_000).hex().encode(), b"a\t1\n" * 500
    server.files["/glue/SST-2.zip"] = make_zip({"SST-2/train.tsv": train, "SST-2/dev.tsv": dev})
    url = server.url("/glue/SST-2.zip")
    ft = pin("train.tsv", train, ArchiveMember(url, "SST-2/train.tsv"))
    fd = pin("dev.tsv", dev, ArchiveMember(url, "SST-2/dev.tsv"))
    assert fetch(ft, group="sst2", **FAST).read_bytes() == train
    assert fetch(fd, group="sst2", **FAST).read_bytes() == dev
    assert server.count("/glue/SST-2.zip") == 1  # the zip is kept for other members
    archives = list((hub.cache_root() / "archives").glob("*/SST-2.zip"))
    assert len(archives) == 1

    # A member that fails its pin drops the (unpinned) cached archive: downloaded again next time.
    bad = pin("train.tsv", train + b"x", ArchiveMember(url, "SST-2/train.tsv"))
    with pytest.raises(IntegrityError, match="deleted the cached archive"):
        fetch(bad, group="sst2", **FAST)
    assert not archives[0].exists()
    oversized = pin("train.tsv", train[:-1], ArchiveMember(url, "SST-2/train.tsv"))
    with pytest.raises(IntegrityError):
        fetch(oversized, group="sst2", **FAST)
    assert nothing_in_place(oversized) and server.count("/glue/SST-2.zip") == 2
    missing = pin("test.tsv", b"zz", ArchiveMember(url, "SST-2/test.tsv"))
    with pytest.raises(DownloadError, match="no member"):
        fetch(missing, group="sst2", **FAST)
    assert server.count("/glue/SST-2.zip") == 3 and archives[0].is_file()  # kept this time

    # Offline: a cached archive still serves a member not yet extracted.
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    cached_path(fd).unlink()
    assert fetch(fd, group="sst2", **FAST).read_bytes() == dev
    assert server.count() == 3


def test_member_failing_its_pin_drops_the_cached_archive(server):
    """A cached archive whose member fails verification is deleted, not kept forever."""
    train, dev = blob(30_000, seed=21), blob(4_000, seed=22)
    stale = make_zip({"SST-2/train.tsv": blob(30_000, seed=23), "SST-2/dev.tsv": dev})
    server.files["/glue/SST-2.zip"] = stale
    url = server.url("/glue/SST-2.zip")
    fd = pin("dev.tsv", dev, ArchiveMember(url, "SST-2/dev.tsv"))
    ft = pin("train.tsv", train, ArchiveMember(url, "SST-2/train.tsv"))
    assert fetch(fd, group="sst2", **FAST).read_bytes() == dev  # the archive is now cached
    (archive,) = (hub.cache_root() / "archives").glob("*/SST-2.zip")
    with pytest.raises(IntegrityError) as e:
        fetch(ft, group="sst2", **FAST)
    assert f"deleted the cached archive {archive}" in str(e.value) and ft.sha256 in str(e.value)
    assert not archive.exists() and nothing_in_place(ft)
    assert server.count("/glue/SST-2.zip") == 1

    server.files["/glue/SST-2.zip"] = make_zip({"SST-2/train.tsv": train, "SST-2/dev.tsv": dev})
    assert fetch(ft, group="sst2", **FAST).read_bytes() == train
    assert server.count("/glue/SST-2.zip") == 2 and archive.is_file()


# ---------------------------------------------------------------- locks


@contextlib.contextmanager
def locked_elsewhere(*paths: Path):
    """Another process holds filelock.FileLock on each path until the block ends."""
    code = ("import sys, time, filelock\n"
            "held = [filelock.FileLock(p) for p in sys.argv[1:]]\n"
            "for lock in held: lock.acquire()\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n")
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, paths)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def test_lock_held_by_another_process_times_out(server, monkeypatch):
    data = blob(5000, seed=31)
    server.files["/l.bin"] = data
    server.files["/a.zip"] = make_zip({"m.bin": data})
    f = pin("l.bin", data, server.url("/l.bin"))
    member_url = server.url("/a.zip")
    fm = pin("m.bin", data, ArchiveMember(member_url, "m.bin"), server.url("/l.bin"))
    lock = Path(f"{cached_path(f)}.lock")
    archive_lock = (hub.cache_root() / "archives" / hashlib.sha256(member_url.encode())
                    .hexdigest()[:16] / "a.zip.lock")
    with locked_elsewhere(lock, archive_lock):
        start = time.monotonic()
        with pytest.raises(DownloadError) as e:
            fetch(f, group="g", lock_timeout=0.5, **FAST)
        assert time.monotonic() - start < 5
        msg = str(e.value)
        assert str(lock) in msg and "another process holds it" in msg
        assert "no other taskzoo process is running, delete" in msg
        monkeypatch.setenv("TASKZOO_LOCK_TIMEOUT", "0.3")  # the default, from the environment
        with pytest.raises(DownloadError, match="after 0.3 s waiting for the lock"):
            fetch(f, group="g", **FAST)
        # A stuck archive lock fails that source only: the next one is tried.
        assert fetch(fm, group="g", **FAST).read_bytes() == data
        assert server.count("/a.zip") == 0
        only_member = pin("m.bin", data, ArchiveMember(member_url, "m.bin"))
        cached_path(only_member).unlink()
        with pytest.raises(DownloadError, match=re.escape(f"lock {archive_lock} on archive")):
            fetch(only_member, group="g", **FAST)
    assert server.count("/l.bin") == 1
    monkeypatch.setenv("TASKZOO_LOCK_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="TASKZOO_LOCK_TIMEOUT"):
        fetch(f, group="g", **FAST)
    monkeypatch.delenv("TASKZOO_LOCK_TIMEOUT")
    assert fetch(f, group="g", **FAST).read_bytes() == data  # free again: works


# ---------------------------------------------------------------- verification records


def test_same_size_corruption_of_a_cached_file_is_refetched(server, monkeypatch):
    data = blob(70_000, seed=41)
    server.files["/c.bin"] = data
    f = pin("c.bin", data, server.url("/c.bin"))
    hashed = count_hashes(monkeypatch)
    path = fetch(f, group="g", **FAST)
    assert len(hashed) == 1  # the download is hashed once, and recorded, not hashed again
    assert fetch(f, group="g", **FAST) == path and len(hashed) == 1  # unchanged: no hash
    before = path.stat()
    path.write_bytes(blob(70_000, seed=42))  # same size, other bytes, same inode
    if path.stat().st_mtime_ns == before.st_mtime_ns:  # a coarse-timestamp filesystem
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert fetch(f, group="g", **FAST).read_bytes() == data  # rehashed, purged, refetched
    assert server.count("/c.bin") == 2

    # An edit in place with the old mtime put back (issue 28, case 15): the kernel moved
    # ctime, so the fast path rehashes and refetches instead of serving the damaged bytes.
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.write(b"\0" * 10)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino) == \
        (st.st_size, st.st_mtime_ns, st.st_ino)
    assert fetch(f, group="g", **FAST).read_bytes() == data and server.count("/c.bin") == 3

    # `taskzoo verify` rehashes every cached file: a damaged one is deleted with its record,
    # and the next fetch downloads it again.
    path.write_bytes(blob(70_000, seed=43))
    assert hub.verify_cache() == [(path, "deleted")] and not path.exists()
    assert fetch(f, group="g", **FAST).read_bytes() == data and server.count("/c.bin") == 4


def test_verified_file_rehashes_only_when_the_file_changes(monkeypatch, tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(data := blob(10_000, seed=51))
    sha = hashlib.sha256(data).hexdigest()
    hashed = count_hashes(monkeypatch)
    assert hub.verified_file(path, sha, len(data)) and len(hashed) == 1
    assert hub.verified_file(path, sha.upper(), len(data)) and len(hashed) == 1
    assert list((hub.cache_root() / "verified").glob("*.json"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # "touch": stale
    assert hub.verified_file(path, sha, len(data)) and len(hashed) == 2  # exactly one rehash
    assert hub.verified_file(path, sha, len(data)) and len(hashed) == 2
    assert not hub.verified_file(path, "0" * 64, len(data)) and len(hashed) == 2  # known bytes
    assert not hub.verified_file(path, sha, len(data) + 1) and len(hashed) == 2  # size alone
    assert not hub.verified_file(tmp_path / "absent.bin", sha, len(data))
    # No writable cache root: nothing is recorded, the file is hashed each time, no error.
    (tmp_path / "not_a_dir").write_text("")
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "not_a_dir" / "home"))
    assert hub.verified_file(path, sha, len(data)) and hub.verified_file(path, sha, len(data))
    assert len(hashed) == 4


def test_bad_spec_rejected():
    with pytest.raises(ValueError):
        fetch(RemoteFile("a", "nothex", 1), group="g")
    with pytest.raises(ValueError):
        fetch(RemoteFile("../a", "0" * 64, 1), group="g")
    with pytest.raises(ValueError):
        fetch(RemoteFile("a", "0" * 64, 1), group="../up")


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, taskzoo.hub; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(hub.__file__).parents[1])})
    assert out.stdout.strip() == "ok", out.stderr


def test_a_cache_root_that_is_a_file_is_one_line_naming_taskzoo_home(server, monkeypatch,
                                                                      tmp_path):
    # Issue 28, case 9: TASKZOO_HOME naming a file was a NotADirectoryError from pathlib.
    data = blob(1_000, seed=61)
    server.files["/h.bin"] = data
    f = pin("h.bin", data, server.url("/h.bin"))
    (home := tmp_path / "home").write_bytes(b"my notes")
    monkeypatch.setenv("TASKZOO_HOME", str(home))
    with pytest.raises(UsageError, match=r"is a file, not a folder; TASKZOO_HOME=.*home must "
                                         r"name a folder"):
        fetch(f, group="g", **FAST)
    assert home.read_bytes() == b"my notes" and server.count("/h.bin") == 0
    monkeypatch.setenv("TASKZOO_HOME", str(home / "sub"))  # a file on the way
    with pytest.raises(UsageError, match="is a file, not a folder"):
        fetch(f, group="g", **FAST)
