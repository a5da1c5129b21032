"""Outputs as JSON-able data: what `taskzoo serve` answers with (images as PNG data URLs,
tensors and arrays as lists). Imports nothing of taskzoo; PIL only for an image."""

from __future__ import annotations

from typing import Any


def is_image(value: Any) -> bool:
    """Whether `value` is a PIL image (without importing PIL for a caller that has none)."""
    module = type(value).__module__
    return module.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "mode")


def png_data_url(image: Any) -> str:
    """A PIL image as a `data:image/png;base64,...` URL (a browser shows it as it is)."""
    import base64
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def json_safe(value: Any) -> Any:
    """`value` with what JSON cannot hold made plain: images as {"image": PNG data URL},
    tensors and arrays as lists, numpy scalars as numbers, tuples as lists.

    >>> json_safe({"boxes": (1, 2)})
    {'boxes': [1, 2]}
    """
    if is_image(value):
        return {"image": png_data_url(value), "size": [value.width, value.height]}
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # a tensor, a numpy array or scalar
        return value.tolist()
    return value
