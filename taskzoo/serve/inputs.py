"""Request decoding for `taskzoo serve`: a body read within its size limit, JSON or multipart
or a raw image, images checked from their header before any pixel is decoded (decompression
bombs), videos decoded frame by frame up to a frame limit. Nothing here opens a file: a
string an image task receives is base64 data, never a path."""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from taskzoo.errors import InputError

# Pillow's readers for the formats a client sends (Image.open tries no other plugin)
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")


@dataclass(frozen=True)
class Limits:
    """What one request may hold.

    >>> Limits(max_body_bytes=1 << 20).max_items
    64
    """

    max_body_bytes: int = 16 << 20  # the request body
    max_pixels: int = 40_000_000  # one image or video frame, read from its header
    max_request_pixels: int = 160_000_000  # all images (or frames) of one request together
    max_video_frames: int = 300  # frames of one uploaded video
    max_items: int = 64  # inputs of one request


class RequestError(InputError):
    """A request the server refuses before any predictor sees it; `status` is its HTTP code
    (413 too large, 415 unsupported media, 422 malformed JSON)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Payload:
    """A decoded request: `inputs` (JSON data, or an upload's bytes), the parameters, and the
    upload's media type when the inputs are bytes."""

    inputs: Any
    parameters: dict[str, Any]
    media_type: str = ""


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes, whatever its
    Content-Length says (a chunked body has none)."""
    def too_large() -> RequestError:
        return RequestError(f"the request body is larger than the limit of {limit:,} bytes", 413)

    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_large()
    body, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large()
        body.append(chunk)
    return b"".join(body)


def parse_json(body: bytes) -> Payload:
    """{"inputs": X, "parameters": {...}} -> Payload; 422 for malformed JSON, 400 for JSON of
    the wrong shape."""
    try:
        data = json.loads(body, parse_constant=no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, NaN; too deep
        raise RequestError(f"the body is not valid JSON ({exc}); expected "
                           '{"inputs": ..., "parameters": {...}}', 422) from None
    if not isinstance(data, dict) or "inputs" not in data:
        raise RequestError('expected a JSON object {"inputs": ..., "parameters": {...}}; got '
                           f"{type(data).__name__}{' without inputs' if isinstance(data, dict) else ''}")
    unknown = sorted(set(data) - {"inputs", "parameters", "options"})
    if unknown:
        raise RequestError(f"unknown key(s) {', '.join(map(repr, unknown))}: a request holds "
                           '"inputs" and "parameters"')
    params = data.get("parameters", data.get("options")) or {}
    if not isinstance(params, dict):
        raise RequestError(f'"parameters" must be a JSON object, got {type(params).__name__}')
    return Payload(data["inputs"], params)


def no_constant(name: str) -> Any:
    """JSON's parser meets NaN or Infinity, which are not JSON: refused."""
    raise ValueError(f"{name} is not a JSON value")


def parse_form_parameters(text: Any) -> dict[str, Any]:
    """A multipart request's `parameters` field: a JSON object in a string."""
    if text is None or text == "":
        return {}
    if not isinstance(text, str):
        raise RequestError('the form field "parameters" must be text holding a JSON object')
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f'the form field "parameters" is not valid JSON ({exc})', 422) from None
    if not isinstance(params, dict):
        raise RequestError('the form field "parameters" must hold a JSON object, got '
                           f"{type(params).__name__}")
    return params


def base64_bytes(text: str, what: str) -> bytes:
    """The bytes of a base64 string or a `data:...;base64,` URL; a 400 that says an image is
    sent as data (a path or URL is never opened or fetched)."""
    data = text.strip()
    if data.startswith("data:"):
        head, _, data = data.partition(",")
        if not head.endswith(";base64"):
            raise RequestError(f"{what}: a data: URL must be base64 (data:image/png;base64,...)")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{what}: not base64 image data; an image is sent as base64 (or a "
                           "data: URL, or a multipart upload in the field 'file'), never as a "
                           f"file name or URL (got {text[:60]!r})") from None
    if not raw:
        raise RequestError(f"{what}: empty image data")
    return raw


def decode_image(data: bytes, what: str, limits: Limits) -> Any:
    """Bytes -> an RGB (or L) PIL image. The size is read from the header and checked before
    any pixel is decoded; Pillow's own decompression-bomb error becomes a 413 too."""
    from PIL import Image, ImageOps

    # no warnings filter here (catch_warnings is process-wide, and this runs in threads): an
    # image past Pillow's warning size is refused below by our own, smaller limit
    try:
        im = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:
        raise RequestError(f"{what}: the image declares more pixels than allowed "
                           f"({limits.max_pixels:,})", 413) from None
    except Exception as exc:  # Pillow's plugins raise many types for what is not an image
        raise RequestError(f"{what}: not an image taskzoo reads ({', '.join(IMAGE_FORMATS)}):"
                           f" {type(exc).__name__}", 415) from None
    w, h = im.size
    if w * h > limits.max_pixels:
        raise RequestError(f"{what}: {w}x{h} is {w * h:,} pixels, more than the limit of "
                           f"{limits.max_pixels:,}", 413)
    if w < 1 or h < 1:
        raise RequestError(f"{what}: the image is empty ({w}x{h})")
    try:
        im.load()
        upright = ImageOps.exif_transpose(im) or im
        return standard_mode(upright)
    except Image.DecompressionBombError:
        raise RequestError(f"{what}: the image declares more pixels than allowed", 413) from None
    except Exception as exc:  # truncated or damaged data
        raise RequestError(f"{what}: the image cannot be decoded ({type(exc).__name__}: "
                           f"{str(exc)[:120]})") from None


def standard_mode(im: Any) -> Any:
    """A decoded image as "L" or "RGB", transparency over white."""
    from PIL import Image

    if im.mode in ("L", "RGB"):
        return im
    if "A" in im.getbands() or im.mode == "P" and "transparency" in im.info:
        rgba = im.convert("RGBA")
        base = Image.new("RGB", rgba.size, (255, 255, 255))
        base.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return base
    if im.mode in ("1", "I;16", "I;16B", "I;16L", "I"):
        return im.convert("L")
    return im.convert("RGB")


def looks_like_video(data: bytes, media_type: str) -> bool:
    """Whether an upload is a video: its media type says so, or its bytes start like an MP4,
    WebM/Matroska or AVI file."""
    if media_type.startswith("video/"):
        return True
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3" or \
        (data[:4] == b"RIFF" and data[8:12] == b"AVI ")


def decode_video(data: bytes, limits: Limits) -> list[Any]:
    """A video's frames as RGB PIL images, decoded one at a time; 413 as soon as there are
    more than `max_video_frames` or a frame is larger than `max_pixels`."""
    import av

    frames: list[Any] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise RequestError("the upload holds no video stream", 415)
            stream = container.streams.video[0]
            if stream.width * stream.height > limits.max_pixels:
                raise RequestError(f"the video's {stream.width}x{stream.height} frames are more"
                                   f" than {limits.max_pixels:,} pixels", 413)
            for frame in container.decode(stream):
                if len(frames) >= limits.max_video_frames:
                    raise RequestError(f"the video is longer than the limit of "
                                       f"{limits.max_video_frames} frames", 413)
                if (len(frames) + 1) * frame.width * frame.height > limits.max_request_pixels:
                    raise RequestError(f"the video's frames hold more than the limit of "
                                       f"{limits.max_request_pixels:,} pixels", 413)
                frames.append(frame.to_image().convert("RGB"))
    except RequestError:
        raise
    except Exception as exc:  # FFmpeg's errors for damaged or unknown data
        raise RequestError(f"the upload is not a video taskzoo reads ({type(exc).__name__})",
                           415) from None
    if not frames:
        raise RequestError("the video has no frames")
    return frames


def image_items(payload: Payload, limits: Limits) -> tuple[list[Any], bool]:
    """An image task's inputs as PIL images: an upload's bytes (an image, or a video's frames),
    one base64 string, or a list of them. A string is never opened as a path."""
    if isinstance(payload.inputs, bytes):
        if looks_like_video(payload.inputs, payload.media_type):
            images, single = decode_video(payload.inputs, limits), False
        else:
            images, single = [decode_image(payload.inputs, "the upload", limits)], True
    else:
        strings, single = payload.inputs, isinstance(payload.inputs, str)
        if single:
            strings = [strings]
        if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            raise RequestError('an image task takes "inputs" as a base64 string (or data: URL) '
                               f"or a list of them; got {describe(payload.inputs)}")
        if not strings:
            raise RequestError("expected at least one image, got an empty list")
        check_count(len(strings), limits)
        images = [decode_image(base64_bytes(s, f"image {i}"), f"image {i}", limits)
                  for i, s in enumerate(strings)]
    total = sum(im.width * im.height for im in images)
    if total > limits.max_request_pixels:
        raise RequestError(f"the request's images hold {total:,} pixels, more than the limit "
                           f"of {limits.max_request_pixels:,}", 413)
    return images, single


def check_count(n: int, limits: Limits) -> None:
    """413 for a request with more inputs than `max_items`."""
    if n > limits.max_items:
        raise RequestError(f"{n} inputs in one request; the limit is {limits.max_items}", 413)


def describe(value: Any) -> str:
    """A JSON value's type as an error message says it."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
