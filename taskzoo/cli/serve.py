"""`taskzoo serve TASK...`: the tasks' predictors behind HTTP (the serve extra)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """The `serve` parser."""
    sv = sub.add_parser("serve", help="serve predictors over HTTP (JSON API and a web page)",
                        description="Serve the tasks' default released weights over HTTP: "
                                    "POST /v1/TASK/predict, GET /v1/tasks, GET /health, the web "
                                    "page at /, the OpenAPI schema at /docs.")
    sv.add_argument("tasks", nargs="+", metavar="TASK", help="task names")
    sv.add_argument("--host", default="127.0.0.1",
                    help="interface to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    sv.add_argument("--backend", default="torch", choices=("torch", "onnx"),
                    help="onnx: the networks on onnxruntime (CPU; the onnx extra)")
    sv.add_argument("--log-level", default="info",
                    choices=("critical", "error", "warning", "info", "debug"),
                    help="uvicorn's log level (info: a line per request)")
    sv.add_argument("--max-batch", type=int, default=32, metavar="N",
                    help="inputs answered by one predictor call at most (1: no batching)")
    sv.add_argument("--max-wait-ms", type=float, default=5.0, metavar="MS",
                    help="how long a request waits for others to share its batch (0: none)")
    sv.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from taskzoo.errors import UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: expected a port number in [0, 65535]")
    if args.max_batch < 1 or args.max_wait_ms < 0:
        raise UsageError("--max-batch must be >= 1 and --max-wait-ms >= 0")
    from taskzoo.api import resolve_task

    for task in args.tasks:  # an unknown name fails in one line before the extra is needed
        resolve_task(task)
    from taskzoo.serve import serve

    serve(args.tasks, host=args.host, port=args.port, device=args.device, backend=args.backend,
          log_level=args.log_level,
          max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
    return 0
