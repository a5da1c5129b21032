"""`taskzoo serve`: predictors behind HTTP (FastAPI on Starlette, run by uvicorn), an optional
extra (`pip install -e ".[serve]"`). `make_app` builds the application for ready predictors,
`serve` loads tasks and runs it.

    >>> from taskzoo.serve import serve
    >>> serve(["sentiment", "detection"], port=8000)       # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util

from taskzoo.errors import UsageError

_MISSING = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
if _MISSING:
    raise UsageError(f"taskzoo serve needs the serve extra ({', '.join(_MISSING)} missing): "
                     'pip install -e ".[serve]"')

from taskzoo.serve.app import make_app  # noqa: E402
from taskzoo.serve.inputs import Limits  # noqa: E402
from taskzoo.serve.server import background, serve  # noqa: E402

__all__ = ["Limits", "background", "make_app", "serve"]
