"""Deployment: a predictor's networks exported to ONNX and run on onnxruntime (`onnx.py`,
`graphs.py`). The server is `taskzoo.serve`.

    >>> det = taskzoo.load("detection", backend="onnx")        # doctest: +SKIP
"""

from __future__ import annotations

from taskzoo.deploy.onnx import MANIFEST, cached_export, export_onnx, load_onnx, read_manifest

__all__ = ["MANIFEST", "cached_export", "export_onnx", "load_onnx", "read_manifest"]
