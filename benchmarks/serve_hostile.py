"""Hostile requests for `benchmarks/serve_load.py`: what a careless or hostile client sends to
`taskzoo serve` instead of what it expects. Each kind is one request that must get a 4xx JSON
error; the server must keep serving afterwards. Deterministic: the same bytes every run.

    >>> kinds = hostile_kinds("sentiment", "text")          # doctest: +SKIP
    >>> sorted(kinds)[:3]                                     # doctest: +SKIP
    ['deep nesting', 'empty list', 'malformed JSON']
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

# one request: (method, path, keyword arguments for httpx's request())
Request = tuple[str, str, dict[str, Any]]
BOMB_SIDE = 50_000  # a 2.5-gigapixel image in its header: far over any pixel limit


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid PNG of side x side greyscale pixels, a few hundred bytes long: its header says
    how big it is, its data are a few zero rows (a decoder that trusts it allocates gigabytes)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def _json(path: str, body: Any) -> Request:
    return ("POST", path, {"json": body})


def _raw(path: str, content: bytes, content_type: str) -> Request:
    return ("POST", path, {"content": content, "headers": {"Content-Type": content_type}})


def _upload(path: str, name: str, data: bytes, content_type: str) -> Request:
    return ("POST", path, {"files": {"file": (name, data, content_type)}})


def common_kinds(task: str, max_body: int) -> dict[str, Request]:
    """Hostile requests any task's endpoint must refuse."""
    url = f"/v1/{task}/predict"
    deep = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return {
        "malformed JSON": _raw(url, b'{"inputs": "a film", ', "application/json"),
        "wrong type (number)": _json(url, {"inputs": 42}),
        "wrong type (nested object)": _json(url, {"inputs": {"a": [1, {"b": None}]}}),
        "no inputs key": _json(url, {"input": "a film"}),
        "unknown parameter": _json(url, {"inputs": "a film", "parameters": {"beam_width": 3}}),
        "parameters not an object": _json(url, {"inputs": "a film", "parameters": [1, 2]}),
        "unknown task": _json(f"/v1/{task}x/predict", {"inputs": "a film"}),
        "oversized body": _raw(url, b'{"inputs": "' + b"a" * (max_body + 1024) + b'"}',
                               "application/json"),
        "deep nesting": _raw(url, deep, "application/json"),
        "wrong content type": _raw(url, b"inputs=a film", "text/plain"),
        "empty list": _json(url, {"inputs": []}),
        "too many inputs": _json(url, {"inputs": ["a film"] * 100_000}),
    }


def image_kinds(task: str) -> dict[str, Request]:
    """Hostile requests an image task's endpoint must refuse: paths, bombs, non-images."""
    url = f"/v1/{task}/predict"
    bomb = png_bomb()
    return {
        "path string": _json(url, {"inputs": "/etc/passwd"}),
        "relative path string": _json(url, {"inputs": "../../../../etc/hostname"}),
        "file URL": _json(url, {"inputs": "file:///etc/passwd"}),
        "bomb image (upload)": _upload(url, "bomb.png", bomb, "image/png"),
        "bomb image (base64)": _json(url, {"inputs": base64.b64encode(bomb).decode()}),
        "not an image (upload)": _upload(url, "holiday.jpg", b"not a picture\n" * 10, "image/jpeg"),
        "truncated image": _upload(url, "cut.png", _small_png()[:40], "image/png"),
        "bad parameter value": _json(url, {"inputs": base64.b64encode(_small_png()).decode(),
                                           "parameters": {"conf": 7}}),
    }


def _small_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def hostile_kinds(task: str, input_kind: str, *, max_body: int = 16 << 20) -> dict[str, Request]:
    """The hostile requests for one served task, by name (`input_kind`: the listing's)."""
    kinds = common_kinds(task, max_body)
    if input_kind in ("image", "video"):
        kinds.update(image_kinds(task))
    return kinds


def cycle(kinds: dict[str, Request], n: int) -> list[tuple[str, Request]]:
    """`n` requests, the kinds in turn."""
    names = sorted(kinds)
    return [(names[i % len(names)], kinds[names[i % len(names)]]) for i in range(n)]

