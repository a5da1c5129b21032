"""A real HTTP server on 127.0.0.1 for the hub's tests (the `server` fixture, registered for
every test module by conftest.py), and helpers that count hashes and race processes."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from taskzoo import hub


class Fake:
    """State shared with the handler: files to serve, faults to inject, requests seen."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        # path -> {"fail": K (500 the first K times), "drop": K (half body then close),
        #          "wrong": True (other bytes, same length), "short": True (truncated body,
        #          matching Content-Length, ignores Range), "delay": seconds}
        self.faults: dict[str, dict] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.full_bodies: dict[str, int] = {}
        self.lock = threading.Lock()
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path

    def count(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if path is None or p == path)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        fake: Fake = self.server.fake  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        with fake.lock:
            fake.requests.append((path, self.headers.get("Range")))
            fault = fake.faults.setdefault(path, {})
            if fault.get("fail", 0) > 0:
                fault["fail"] -= 1
                status = 500
            else:
                status = 200
        if fault.get("delay"):
            time.sleep(fault["delay"])
        if status == 500:
            return self.send_error(500)
        if path not in fake.files:
            return self.send_error(404)
        data = fake.files[path]
        if fault.get("wrong"):
            data = bytes(b ^ 0xFF for b in data)
        if fault.get("short"):
            return self._send(200, data[: len(data) // 2], len(data) // 2)
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
        body = data[start:]
        with fake.lock:
            drop = fault.get("drop", 0) > 0
            if drop:
                fault["drop"] -= 1
        extra = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
        if drop:  # declare the full length, send half, hang up
            return self._send(206 if start else 200, body[: len(body) // 2], len(body), extra)
        self._send(206 if start else 200, body, len(body), extra)
        if start == 0:
            with fake.lock:
                fake.full_bodies[path] = fake.full_bodies.get(path, 0) + 1

    def _send(self, status: int, body: bytes, length: int, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server():
    fake = Fake()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def run_at_once(target, args: tuple, *, n: int, timeout: float) -> list:
    """Start n spawned processes of target(*args, barrier, queue) that pass a barrier together;
    what each put on the queue, after checking every process exited cleanly."""
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    return results


def replace_in_hub(monkeypatch, name: str, replacement) -> None:
    """Replace `name` in every private hub module that holds it: each imports the names it
    uses from the module that defines them, so a replacement has to reach all of them."""
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("taskzoo.hub.") and hasattr(module, name):
            monkeypatch.setattr(module, name, replacement)


def count_hashes(monkeypatch) -> list[Path]:
    """Every path the hub hashes from now on."""
    seen: list[Path] = []
    real = hub.sha256_file

    def counting(path):
        seen.append(Path(path))
        return real(path)

    replace_in_hub(monkeypatch, "sha256_file", counting)
    return seen
