"""`serve()`: load tasks and run the application with uvicorn, on the loopback interface
unless told otherwise."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from taskzoo.serve.app import make_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def load_predictors(tasks: Sequence[str], *, device: str = "auto") -> dict[str, Any]:
    """Each task's predictor from its default released weights, by its registered name (an
    alias is served under the task's name); UnknownNameError for one that is not a task."""
    from taskzoo.api import resolve_task
    from taskzoo.weights import load

    names = [resolve_task(t).name for t in tasks]  # every name checked before any loading
    return {name: load(name, device=device) for name in dict.fromkeys(names)}


def serve(tasks: Sequence[str], *, host: str = "127.0.0.1", port: int = 8000,
          device: str = "auto", log_level: str = "info", **app_options: Any) -> None:
    """Load `tasks` and answer HTTP requests until interrupted (blocking). `app_options` go
    to `make_app` (limits, max_batch, max_wait_ms).

    >>> serve(["sentiment"], port=8000, max_batch=32, max_wait_ms=5)   # doctest: +SKIP
    """
    import uvicorn

    if host not in LOOPBACK:
        print(f"taskzoo: warning: serving on {host}: every machine that reaches it can send "
              "requests (there is no authentication); 127.0.0.1 keeps it to this one",
              file=sys.stderr)
    app = make_app(load_predictors(tasks, device=device), **app_options)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@contextmanager
def background(app: Any, *, host: str = "127.0.0.1", port: int = 0,
               timeout: float = 60.0) -> Iterator[str]:
    """Run `app` with uvicorn in a thread while the block runs; yields its base URL (port 0:
    a free one). Stops it on exit, waiting at most `timeout` seconds (tests, benchmarks).

    >>> with background(make_app(predictors)) as url:          # doctest: +SKIP
    ...     httpx.get(url + "/health").json()
    """
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="taskzoo-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start on {host}:{port} within {timeout} s")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)
